/**
 * Types for the subset of Adaptive Cards schema 1.5 that this service sends.
 *
 * Only what the builders use is typed; anything else is left out on purpose so
 * a builder cannot reach for an element that Teams or the schema version does
 * not support. Property names and values follow the schema explorer
 * (adaptivecards.io/explorer, schema 1.5).
 */
import type { CardVerb } from './card-actions';

/** The schema version every card declares (Teams supports 1.5 on desktop, web and mobile). */
export const CARD_SCHEMA_VERSION = '1.5' as const;

/** JSON schema URL placed in `$schema`. */
export const CARD_SCHEMA_URL = 'http://adaptivecards.io/schemas/adaptive-card.json' as const;

export type TextSize = 'Small' | 'Default' | 'Medium' | 'Large' | 'ExtraLarge';
export type TextWeight = 'Lighter' | 'Default' | 'Bolder';
export type TextColor = 'Default' | 'Dark' | 'Light' | 'Accent' | 'Good' | 'Warning' | 'Attention';
export type Spacing = 'None' | 'Small' | 'Default' | 'Medium' | 'Large' | 'ExtraLarge' | 'Padding';

interface ElementBase {
  id?: string;
  spacing?: Spacing;
  separator?: boolean;
}

/**
 * A TextBlock. Its `text` is processed as markdown by the host, so builders put
 * only the service's own wording here, never a value that came from a person.
 */
export interface TextBlock extends ElementBase {
  type: 'TextBlock';
  text: string;
  wrap?: boolean;
  size?: TextSize;
  weight?: TextWeight;
  color?: TextColor;
  isSubtle?: boolean;
  /** 1.5: `heading` marks the block as a heading for screen readers. */
  style?: 'default' | 'heading';
}

/** A TextRun inside a RichTextBlock. Hosts render its `text` literally (no markdown, no HTML). */
export interface TextRun {
  type: 'TextRun';
  text: string;
  size?: TextSize;
  weight?: TextWeight;
  color?: TextColor;
  isSubtle?: boolean;
  italic?: boolean;
  fontType?: 'Default' | 'Monospace';
}

/** A RichTextBlock (1.2): the element that carries values from people, as literal TextRuns. */
export interface RichTextBlock extends ElementBase {
  type: 'RichTextBlock';
  inlines: TextRun[];
}

/** One row of a FactSet; both strings are processed as markdown by the host. */
export interface Fact {
  title: string;
  value: string;
}

export interface FactSet extends ElementBase {
  type: 'FactSet';
  facts: Fact[];
}

/** Input.Text (1.3 label, isRequired, errorMessage). */
export interface TextInput extends ElementBase {
  type: 'Input.Text';
  id: string;
  label: string;
  isRequired?: boolean;
  errorMessage?: string;
  placeholder?: string;
  maxLength?: number;
  value?: string;
  style?: 'Text' | 'Email' | 'Tel' | 'Url' | 'Password';
}

/** One choice of an Input.ChoiceSet. Hosts show `title` literally; `value` is what the click sends. */
export interface Choice {
  title: string;
  value: string;
}

/** Input.ChoiceSet (1.3 label, isRequired, errorMessage); single choice only here. */
export interface ChoiceSetInput extends ElementBase {
  type: 'Input.ChoiceSet';
  id: string;
  label: string;
  choices: Choice[];
  /** `compact` is a drop-down list; `expanded` shows radio buttons. */
  style?: 'compact' | 'expanded';
  isRequired?: boolean;
  errorMessage?: string;
  placeholder?: string;
  /** The `value` of the pre-selected choice. */
  value?: string;
  wrap?: boolean;
}

export interface Container extends ElementBase {
  type: 'Container';
  items: CardElement[];
  style?: 'default' | 'emphasis' | 'good' | 'attention' | 'warning' | 'accent';
}

export type CardElement = TextBlock | RichTextBlock | FactSet | TextInput | ChoiceSetInput | Container;

/** Action.Execute (1.4, Universal Actions): the only action type this service puts on a card. */
export interface ExecuteAction {
  type: 'Action.Execute';
  title: string;
  verb: CardVerb;
  data: Record<string, string>;
  /** `auto` sends the card's inputs (validated first); `none` sends none and skips validation. */
  associatedInputs?: 'auto' | 'none';
  style?: 'default' | 'positive' | 'destructive';
}

/** A whole card, as sent in an attachment of content type `application/vnd.microsoft.card.adaptive`. */
export interface AdaptiveCard {
  type: 'AdaptiveCard';
  $schema: typeof CARD_SCHEMA_URL;
  version: typeof CARD_SCHEMA_VERSION;
  body: CardElement[];
  actions?: ExecuteAction[];
  /**
   * Universal Actions refresh (schema 1.4): Teams sends `action` (an `adaptiveCard/action` invoke) when one of
   * `userIds` views the card, and shows that user the card the bot answers with (at most 60 ids).
   */
  refresh?: { action: ExecuteAction; userIds: string[] };
}
