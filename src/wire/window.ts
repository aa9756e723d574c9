/**
 * The TCP window field (RFC 7323 §2.2: the field is the window right-shifted by the shift
 * the sender announced in its SYN). One calculation for every field the gateway writes: the
 * south wrapper's held and rewritten ACKs, the recovery engine's keepalive ACKs and the
 * window it offers a new incarnation, the translation between two window scales.
 */

/** The largest value of the 16-bit window field. */
export const WINDOW_FIELD_MAX = 0xffff;

/**
 * The window field that puts the right edge at `rightEdge` when the ack is at `ackOff` (any
 * one stream's offsets or byte counts: only the difference matters), for a peer that scales
 * the field by 2^`shift`. Rounded up, so the edge never moves left of `rightEdge` (a receiver
 * must not shrink its window, RFC 9293 §3.8.6 discourages it: rounding down would do just that); capped
 * at the field's 16 bits; 0 when the edge lies at or left of the ack.
 */
export function windowField(rightEdge: number, ackOff: number, shift: number): number {
  const w = Math.ceil((rightEdge - ackOff) / 2 ** shift);
  return w > WINDOW_FIELD_MAX ? WINDOW_FIELD_MAX : w < 0 ? 0 : w;
}
