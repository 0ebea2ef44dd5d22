/* YO1 offline codes (docs/voucher.md, "Offline codes"): what the phone computes with no network.
 *
 *   const code = await YO1.code(credentialId, secret, {at: Date.now() / 1000, seq: 0});
 *   const key = await YO1.importKey(secret);   // non-extractable: keep it in IndexedDB, drop the text
 *   const code2 = await YO1.code(credentialId, key, {seq: 1});
 *
 * step = floor(unix time / 30); seq = 0..15 (a new code within the same step: each code is single
 * use); mac = upper-case base32 without padding of the first 10 bytes of HMAC-SHA256(key, UTF-8
 * "YO1:{credential_id}:{step}:{seq}"), key = the 32 bytes the secret (52 base32 characters) decodes
 * to. WebCrypto only (crypto.subtle: a secure context, i.e. https or localhost), no dependencies.
 */
(function (root) {
  "use strict";
  var ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  var PERIOD_S = 30;
  var MAX_SEQ = 15;

  function base32Decode(text) {
    if (!/^[A-Z2-7]{52}$/.test(text)) throw new TypeError("secret: 52 characters of upper-case base32");
    var bits = 0, value = 0, out = [];
    for (var i = 0; i < text.length; i++) {
      value = (value << 5) | ALPHABET.indexOf(text[i]);
      bits += 5;
      if (bits >= 8) {
        out.push((value >>> (bits - 8)) & 0xff);
        bits -= 8;
      }
    }
    return new Uint8Array(out);
  }

  function base32Encode(bytes) {
    var bits = 0, value = 0, out = "";
    for (var i = 0; i < bytes.length; i++) {
      value = (value << 8) | bytes[i];
      bits += 8;
      while (bits >= 5) {
        out += ALPHABET[(value >>> (bits - 5)) & 31];
        bits -= 5;
      }
    }
    if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
    return out;
  }

  function stepAt(unixSeconds) {
    return Math.floor(unixSeconds / PERIOD_S);
  }

  /* A non-extractable HMAC key from the secret: a page can store it (IndexedDB) without the text. */
  function importKey(secret) {
    return root.crypto.subtle.importKey(
      "raw", base32Decode(secret), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
  }

  /* secretOrKey: the 52-character secret, or a CryptoKey from importKey. */
  async function make(credentialId, secretOrKey, step, seq) {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(credentialId)) throw new TypeError("credential_id");
    if (!Number.isSafeInteger(step) || step < 0) throw new TypeError("step");
    if (!Number.isInteger(seq) || seq < 0 || seq > MAX_SEQ) throw new TypeError("seq: 0..15");
    var text = "YO1:" + credentialId + ":" + step + ":" + seq;
    var key = typeof secretOrKey === "string" ? await importKey(secretOrKey) : secretOrKey;
    var mac = new Uint8Array(await root.crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)));
    return text + ":" + base32Encode(mac.slice(0, 10));
  }

  /* The code for unix time opts.at (seconds, default now) and refresh number opts.seq (default 0). */
  function code(credentialId, secretOrKey, opts) {
    opts = opts || {};
    var at = opts.at === undefined ? Date.now() / 1000 : opts.at;
    return make(credentialId, secretOrKey, stepAt(at), opts.seq === undefined ? 0 : opts.seq);
  }

  root.YO1 = {code: code, make: make, importKey: importKey, stepAt: stepAt, PERIOD_S: PERIOD_S, MAX_SEQ: MAX_SEQ};
})(typeof self !== "undefined" ? self : this);
