import hashlib
import hmac
import json
import os

from flask import Flask, jsonify, request

app = Flask(__name__)
app.config['MAX_CONTENT_LENGTH'] = 1024 * 1024  # bound the body: 413 above 1 MiB
SECRET = os.environ['FULLUP_SECRET'].encode()   # from the environment, never from the source


def error(status, code, message):
    return jsonify(error={'code': code, 'message': message}), status


@app.post('/webhook-endpoint')
def webhook():
    received = request.headers.get('fullup-signature')
    if received is None:  # the seed crashed here with a 500 (compare_digest(None, ...))
        return error(400, 'missing_signature', 'missing fullup-signature header')
    body = request.get_data()  # the exact bytes; not as_text, not request.json first
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    # Compare bytes: compare_digest raises on non-ASCII str, and a header can hold any.
    if not hmac.compare_digest(received.encode(), expected.encode()):
        return error(403, 'signature_mismatch', 'signature mismatch')
    try:
        event = json.loads(body)  # parse only what verified
    except ValueError:
        return error(422, 'invalid_json', 'verified body is not JSON')
    app.logger.info('verified webhook %s', event.get('type'))
    return jsonify(message='Webhook processed successfully.'), 200


if __name__ == '__main__':
    app.run(port=int(os.environ.get('PORT', 3000)))  # no debug=True outside your laptop
