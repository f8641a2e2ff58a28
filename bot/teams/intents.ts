/**
 * What a typed message asks for. Typed words work as well as the buttons
 * (issue #2): "unlock", "my card is locked", "pair K7QF-M2XD", "help", "cancel";
 * staff (issue #12): "report [YYYY-MM-DD [YYYY-MM-DD]]", "open case for someone@nhs.net: reason",
 * "open case" (the helpdesk form).
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
  /** RA: the usage report; dates as typed (`YYYY-MM-DD`), absent for the default range. */
  | { kind: 'report'; from: string | null; to: string | null }
  /** Helpdesk: open an RA case for someone; `reason` as typed (case kept), may be empty. */
  | { kind: 'open_case_for'; email: string; reason: string }
  /** Helpdesk: the "open an RA case for someone" card form ("open case", "open a case for someone"). */
  | { kind: 'open_case_form' }
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
  // Helpdesk handoff, read from the text as typed (the reason keeps its case): "open case for x@nhs.net: reason".
  // Teams may send a typed address as a link (`<a href="mailto:x">x</a>`): keep the link text.
  const typed = (text ?? '').replace(/<at>[^<]*<\/at>/gi, ' ').replace(/<a\b[^>]*>([^<]*)<\/a>/gi, '$1').replace(/\s+/g, ' ').trim();
  const handoff = /^open (?:an? )?(?:ra )?case for:?\s+(?:mailto:)?([^\s:;,]+)\s*[:;,-]?\s*(.*)$/i.exec(typed);
  if (/^open (?:an? )?(?:ra )?case(?: for:?(?: someone| somebody| a person)?)?$/.test(t)) return { kind: 'open_case_form' };
  if (handoff) return { kind: 'open_case_for', email: handoff[1]!, reason: handoff[2]!.trim() };
  const report = /^(?:usage )?report(?:\s+(?:from\s+)?(\d{4}-\d{2}-\d{2})(?:\s+(?:to\s+)?(\d{4}-\d{2}-\d{2}))?)?$/.exec(t);
  if (report) return { kind: 'report', from: report[1] ?? null, to: report[2] ?? report[1] ?? null };
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
