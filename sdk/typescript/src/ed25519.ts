/**
 * ed25519: RFC 8032 signing, and verification with ZIP-215's rules (protocol §0), as the
 * Rust side's `ed25519-zebra` applies them: non-canonical and small-order point encodings
 * accepted, a non-canonical `s` refused, the cofactored equation checked.
 */

import { ed25519 } from '@noble/curves/ed25519.js';

/** Verifies `signature` over `message` by `publicKey`, with ZIP-215's rules; never throws. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    // Said explicitly, not left to the library's default.
    return ed25519.verify(signature, message, publicKey, { zip215: true });
  } catch {
    return false;
  }
}

/** Whether 32 bytes decode as a curve point (ZIP-215's decoding). */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  try {
    ed25519.Point.fromBytes(publicKey, true);
    return true;
  } catch {
    return false;
  }
}

/** The ed25519 public key of a 32-byte secret seed. */
export function publicKeyOf(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

/** RFC 8032 signature (deterministic) of `message` with the 32-byte secret `seed`. */
export function signWithSeed(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, seed);
}

/** 32 random bytes from the platform's CSPRNG (`crypto.getRandomValues`). */
export function randomSeed(): Uint8Array {
  return ed25519.utils.randomSecretKey();
}
