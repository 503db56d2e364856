from flask import Flask, request, jsonify
import hashlib
import hmac
import os

app = Flask(__name__)

@app.route('/webhook-endpoint', methods=['POST'])
def verify_webhook():
    received_signature = request.headers.get('fullup-signature')
    body = request.get_data(as_text=True)
    secret = 'your_shared_secret_key'  # This should be the same secret shared by Fullup.

    # Generate the signature based on the request body
    expected_signature = hmac.new(
        key=secret.encode(),
        msg=body.encode(),
        digestmod=hashlib.sha256
    ).hexdigest()

    # Compare the received signature with the expected signature
    if hmac.compare_digest(received_signature, expected_signature):
        print('Verification successful. The request is from Fullup.')
        # Process the webhook payload as needed
        print('Webhook payload:', request.json)

        return jsonify({'message': 'Webhook processed successfully.'}), 200
    else:
        print('Verification failed. The request might not be from Fullup.')
        return jsonify({'message': 'Failed to verify the webhook signature.'}), 403

if __name__ == '__main__':
    PORT = os.environ.get('PORT', 3000)
    app.run(port=PORT, debug=True)
