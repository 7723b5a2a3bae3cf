'use strict';
/*
 * Reference segment counts from Twilio's sms-segments-calculator.
 *
 * Reads a JSON array of strings on stdin and prints a JSON array with, for each string,
 * {"encoding": "GSM-7" | "UCS-2", "segments": <number>} as the package computes them with its
 * defaults (encoding "auto", Smart Encoding off: no character is replaced).
 *
 * Usage: node tests/oracle/segments.js < texts.json   (after `npm ci --prefix tests/oracle`)
 */
const { SegmentedMessage } = require('sms-segments-calculator');

// The package's `encodingName` values, mapped to herald.segments' encoding names.
const ENCODINGS = { 'GSM-7': 'GSM-7', 'UCS-2': 'UCS-2' };

function describe(text) {
  const message = new SegmentedMessage(text, 'auto', false);
  const encoding = ENCODINGS[message.encodingName];
  if (encoding === undefined) {
    throw new Error(`unexpected encodingName ${JSON.stringify(message.encodingName)}`);
  }
  return { encoding, segments: message.segmentsCount };
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const texts = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  if (!Array.isArray(texts) || !texts.every((text) => typeof text === 'string')) {
    throw new TypeError('expected a JSON array of strings on stdin');
  }
  process.stdout.write(`${JSON.stringify(texts.map(describe))}\n`);
});
