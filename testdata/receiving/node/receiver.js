const express = require('express');
const crypto = require('crypto');

const app = express();
const secret = process.env.FULLUP_SECRET; // from the environment, never from the source

// express.raw keeps the exact bytes received as a Buffer. No express.json() before it:
// once parsed, the bytes are gone, and JSON.stringify does not give them back.
app.post('/webhook-endpoint', express.raw({ type: 'application/json', limit: '1mb' }), (req, res) => {
  const received = req.get('fullup-signature');
  if (!Buffer.isBuffer(req.body) || typeof received !== 'string' || !/^[0-9a-f]{64}$/.test(received)) {
    return res.status(400).json({ error: { code: 'missing_signature', message: 'missing or malformed fullup-signature' } });
  }
  const expected = crypto.createHmac('sha256', secret).update(req.body).digest();
  // Constant-time comparison of two 32-byte buffers; === leaks how many characters matched.
  if (!crypto.timingSafeEqual(Buffer.from(received, 'hex'), expected)) {
    return res.status(403).json({ error: { code: 'signature_mismatch', message: 'signature mismatch' } });
  }
  let event;
  try {
    event = JSON.parse(req.body.toString('utf8')); // parse only what verified
  } catch {
    return res.status(422).json({ error: { code: 'invalid_json', message: 'verified body is not JSON' } });
  }
  console.log('verified webhook', event.type);
  res.status(200).send('Webhook processed successfully.');
});

const PORT = process.env.PORT || 3000;
app.listen(PORT, () => console.log(`listening on port ${PORT}`));
