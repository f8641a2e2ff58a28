/**
 * Small element helpers shared by the card builders.
 *
 * The rule they enforce: the service's own wording goes into TextBlocks
 * (markdown allowed), and every value that came from a caller (a person's name,
 * an email address, a workstation name, a message built by a journey) goes into
 * a TextRun, which hosts render literally: no markdown links, no HTML.
 */
import type { AdaptiveCard, CardElement, ExecuteAction, RichTextBlock, TextBlock, TextColor, TextRun } from './adaptive-card.types';
import { CARD_SCHEMA_URL, CARD_SCHEMA_VERSION } from './adaptive-card.types';
import type { CardActionButtonData, CardVerb } from './card-actions';

/**
 * Neutralise the Adaptive Cards date/time functions (`{{DATE(...)}}`, `{{TIME(...)}}`),
 * which hosts expand even inside a TextRun, by putting a zero-width space between the braces.
 *
 * @param value - text from a caller
 * @returns the same text as the person sees it, with no function the host would expand
 */
export function literalText(value: string): string {
  return value.replace(/\{\{/g, '{\u200b{');
}

/** The service's own sentence, as a wrapping TextBlock. Never pass a value from a person. */
export function paragraph(text: string, options: Omit<TextBlock, 'type' | 'text'> = {}): TextBlock {
  return { type: 'TextBlock', text, wrap: true, ...options };
}

/** The service's own card title, marked as a heading (schema 1.5 `style: heading`). */
export function heading(text: string, color?: TextColor): TextBlock {
  return { type: 'TextBlock', text, wrap: true, size: 'Medium', weight: 'Bolder', style: 'heading', ...(color ? { color } : {}) };
}

/** One literal run of text (a value from a caller, or own wording next to one). */
export function run(text: string, options: Omit<TextRun, 'type' | 'text'> = {}): TextRun {
  return { type: 'TextRun', text: literalText(text), ...options };
}

/**
 * A paragraph made of literal runs. Plain strings become default runs.
 *
 * @param parts - runs or strings, joined with no separator
 */
export function literal(...parts: Array<string | TextRun>): RichTextBlock {
  return { type: 'RichTextBlock', inlines: parts.map((p) => (typeof p === 'string' ? run(p) : p)) };
}

/** A caller-supplied title, rendered literally but styled like {@link heading}. */
export function literalHeading(text: string, color?: TextColor): RichTextBlock {
  return literal(run(text, { size: 'Medium', weight: 'Bolder', ...(color ? { color } : {}) }));
}

/**
 * An `Action.Execute` button whose data is typed by its verb.
 *
 * @param verb - the card verb
 * @param title - button text (own wording)
 * @param data - the verb's data without input fields, e.g. `{ runId, step }`
 * @param options.associatedInputs - `auto` to send and validate the card's inputs; defaults to `none`
 */
export function execute<V extends CardVerb>(
  verb: V,
  title: string,
  data: CardActionButtonData<V>,
  options: { associatedInputs?: 'auto' | 'none'; style?: ExecuteAction['style'] } = {},
): ExecuteAction {
  return {
    type: 'Action.Execute',
    title,
    verb,
    data: { ...(data as Record<string, string>) },
    associatedInputs: options.associatedInputs ?? 'none',
    ...(options.style ? { style: options.style } : {}),
  };
}

/** Assemble a card (schema 1.5). */
export function adaptiveCard(body: CardElement[], actions: ExecuteAction[] = []): AdaptiveCard {
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA_URL,
    version: CARD_SCHEMA_VERSION,
    body,
    ...(actions.length > 0 ? { actions } : {}),
  };
}
