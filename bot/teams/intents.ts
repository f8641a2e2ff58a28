/**
 * What a typed message asks for. Typed words work as well as the buttons
 * (issue #2): "unlock", "my card is locked", "pair K7QF-M2XD", "help", "cancel".
 */
export type Intent =
  | { kind: 'unlock' }
  | { kind: 'register' }
  | { kind: 'pair'; code: string }
  | { kind: 'pair_help' }
  | { kind: 'help' }
  | { kind: 'cancel' }
  | { kind: 'greeting' }
  | { kind: 'talk_to_ra' }
  | { kind: 'unknown' };

/**
 * Read an intent from message text.
 *
 * @param text - the message text; Teams @mention markup (`<at>Bot</at>`) and surrounding space are ignored
 * @returns the intent; `unknown` when nothing matched
 */
export function parseIntent(text: string | undefined | null): Intent {
  const t = (text ?? '')
    .replace(/<at>[^<]*<\/at>/gi, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
  if (t === '') return { kind: 'unknown' };
  const pair = /^pair(?:\s+(?:code\s+)?(.+))?$/.exec(t);
  if (pair) return pair[1] ? { kind: 'pair', code: pair[1].trim() } : { kind: 'pair_help' };
  if (/^(cancel|stop)\b/.test(t)) return { kind: 'cancel' };
  if (/\b(talk|speak|chat)\b.*\b(ra|registration authority|a person|someone|a human)\b|^(ra|registration authority)( team)?$|^(i need|get me) (the )?(ra|registration authority)\b/.test(t)) return { kind: 'talk_to_ra' };
  if (/^(help|\?|what can you do)/.test(t)) return { kind: 'help' };
  if (/^register\b|^sign me up|^set up self.?service/.test(t)) return { kind: 'register' };
  if (/\bunlock\b|\b(card|smartcard|smart card)\b.*\b(locked|blocked)\b|\blocked out\b/.test(t)) return { kind: 'unlock' };
  if (/^(hi|hello|hey|good (morning|afternoon|evening))\b/.test(t)) return { kind: 'greeting' };
  return { kind: 'unknown' };
}
