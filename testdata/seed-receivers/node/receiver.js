const express = require('express');
const crypto = require('crypto');

const app = express();

app.use(express.json());

app.post('/webhook-endpoint', (req, res) => {
  // Grab the fullup-signature header value
  const receivedSignature = req.headers['fullup-signature'];

  const body = req.body;

  const secret = 'your_shared_secret_key'; // Provided after you create a webhook in your Fullup settings.

  // Generate the signature based on the request body
  const expectedSignature = crypto.createHmac('sha256', secret)
    .update(JSON.stringify(body))
    .digest('hex');

  // Compare the received signature with the expected signature
  if (receivedSignature === expectedSignature) {
    console.log('Verification successful. The request is from Fullup.');

    // Do whatever you want with the webbook payload
    console.log('Webhook payload:', body);

    res.status(200).send('Webhook processed successfully.');
  } else {
    console.log('Verification failed. The request might not be from Fullup.');

    res.status(403).send('Failed to verify the webhook signature.');
  }
});

const PORT = process.env.PORT || 3000;

app.listen(PORT, () => console.log(`Server running on port ${PORT}`));
