// Oracle for tests/it/canonical_json.rs: reads one JSON-encoded string per stdin line and
// answers, in order, one line per input: {"ok": JSON.stringify(JSON.parse(text))} or
// {"err": message} when JSON.parse throws. All answers are written when stdin closes.
'use strict';
const readline = require('readline');

const answers = [];
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  const text = JSON.parse(line);
  let answer;
  try {
    answer = { ok: JSON.stringify(JSON.parse(text)) };
  } catch (e) {
    // V8 quotes the input in its message and may cut a surrogate pair in half.
    answer = { err: String(e.message).replace(/[\ud800-\udfff]/gu, '\ufffd') };
  }
  answers.push(JSON.stringify(answer));
});
lines.on('close', () => {
  process.stdout.write(answers.map((a) => a + '\n').join(''));
});
