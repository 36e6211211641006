/**
 * The packet codec (format v1, docs/packet-format.md): encodePacket signs, compresses and encrypts a
 * header + payload into a binary OpenPGP message; decodePacket decrypts, verifies and checks it while
 * streaming the payload into a sink. Pure: streams in, streams out, no fs. Failures: see encode.ts
 * and decode.ts (FerryError PACKET_* codes).
 */
export { encodePacket, type EncodeOptions } from './encode.js';
export { decodePacket, type DecodeOptions, type DecodedPacket } from './decode.js';
