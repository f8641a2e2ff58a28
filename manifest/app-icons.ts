/**
 * The Teams app icons, drawn in code so they can be made again byte for byte
 * (`npx tsx manifest/app-icons.main.ts`), and the rules Teams sets for them.
 *
 * The glyph is an ID-1 smartcard (ISO/IEC 7810, 85.60 x 53.98 mm, ratio about
 * 1.59) with its contact chip on the left and two lines of print on the right.
 */
import { PNG } from 'pngjs';

/** Icon sizes and colours (Teams app manifest `icons`: color 192x192, outline 32x32). */
export const APP_ICON = {
  color: { file: 'color.png', size: 192 },
  outline: { file: 'outline.png', size: 32 },
  /** NHS Blue (NHS identity guidelines, colour #005EB8); also the manifest's `accentColor`. */
  background: [0x00, 0x5e, 0xb8],
  card: [0xff, 0xff, 0xff],
  /** NHS Warm Yellow #FFB81C for the contact chip. */
  chip: [0xff, 0xb8, 0x1c],
  chipContacts: [0xb7, 0x7f, 0x00],
  print: [0xae, 0xb7, 0xbd],
} as const;

type Rgb = readonly [number, number, number];
/** A shape: is the point (x, y), in pixels from the top-left corner, inside it? */
type Shape = (x: number, y: number) => boolean;

/** Samples per pixel along each axis for anti-aliasing (SAMPLES^2 per pixel). */
const SAMPLES = 4;

function roundedRect(x0: number, y0: number, x1: number, y1: number, r: number): Shape {
  return (x, y) => {
    if (x < x0 || x > x1 || y < y0 || y > y1) return false;
    const cx = Math.min(Math.max(x, x0 + r), x1 - r);
    const cy = Math.min(Math.max(y, y0 + r), y1 - r);
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
  };
}

function minus(a: Shape, b: Shape): Shape {
  return (x, y) => a(x, y) && !b(x, y);
}

/** Fraction (0..1) of the pixel at (px, py) that the shape covers. */
function coverage(shape: Shape, px: number, py: number): number {
  let hits = 0;
  for (let i = 0; i < SAMPLES; i++) {
    for (let j = 0; j < SAMPLES; j++) {
      if (shape(px + (i + 0.5) / SAMPLES, py + (j + 0.5) / SAMPLES)) hits++;
    }
  }
  return hits / (SAMPLES * SAMPLES);
}

/** An RGBA canvas with straight (not premultiplied) alpha, values 0..1. */
class Canvas {
  readonly rgba: Float64Array;
  constructor(readonly size: number) {
    this.rgba = new Float64Array(size * size * 4);
  }

  /** Paint the shape in an opaque colour over what is there (Porter-Duff source-over). */
  fill(shape: Shape, rgb: Rgb): void {
    this.each(shape, (i, a) => {
      const da = this.rgba[i + 3]!;
      const oa = a + da * (1 - a);
      for (let c = 0; c < 3; c++) {
        const mixed = (rgb[c]! / 255) * a + this.rgba[i + c]! * da * (1 - a);
        this.rgba[i + c] = oa === 0 ? 0 : mixed / oa;
      }
      this.rgba[i + 3] = oa;
    });
  }

  /** Remove the shape's coverage from the alpha channel (Porter-Duff destination-out). */
  erase(shape: Shape): void {
    this.each(shape, (i, a) => {
      this.rgba[i + 3] = this.rgba[i + 3]! * (1 - a);
    });
  }

  private each(shape: Shape, paint: (index: number, cover: number) => void): void {
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) {
        const a = coverage(shape, x, y);
        if (a > 0) paint((y * this.size + x) * 4, a);
      }
    }
  }

  /** Encode as an 8-bit RGBA PNG; `rgbOverride` sets every pixel's colour (the outline icon is white only). */
  toPng(rgbOverride?: Rgb): Buffer {
    const png = new PNG({ width: this.size, height: this.size, colorType: 6 });
    for (let i = 0; i < this.rgba.length; i += 4) {
      for (let c = 0; c < 3; c++) png.data[i + c] = rgbOverride ? rgbOverride[c]! : Math.round(this.rgba[i + c]! * 255);
      png.data[i + 3] = Math.round(this.rgba[i + 3]! * 255);
    }
    return PNG.sync.write(png, { colorType: 6, inputColorType: 6, inputHasAlpha: true, deflateLevel: 9 });
  }
}

/**
 * Draw the colour icon: a white smartcard with a yellow chip on NHS Blue, full bleed.
 *
 * NOTE: Teams rounds the corners itself, so the background fills the square; the
 * card sits well inside the centre so nothing is cut off.
 *
 * @returns a 192x192 8-bit RGBA PNG, every pixel opaque
 */
export function drawColorIcon(): Buffer {
  const s = APP_ICON.color.size;
  const canvas = new Canvas(s);
  canvas.fill(() => true, APP_ICON.background);
  // Card 108 x 68 px (ratio 1.59, ID-1), centred.
  const x0 = 42;
  const y0 = 62;
  canvas.fill(roundedRect(x0, y0, x0 + 108, y0 + 68, 9), APP_ICON.card);
  // Contact chip with its six contact pads: a 2 px cross of lines through it.
  const chip = roundedRect(x0 + 14, y0 + 20, x0 + 44, y0 + 44, 5);
  canvas.fill(chip, APP_ICON.chip);
  const mid = (a: number, b: number): number => (a + b) / 2;
  const contacts: Shape = (x, y) =>
    chip(x, y) &&
    (Math.abs(x - mid(x0 + 14, x0 + 44)) <= 1 || Math.abs(y - (y0 + 28)) <= 1 || Math.abs(y - (y0 + 36)) <= 1);
  canvas.fill(contacts, APP_ICON.chipContacts);
  // Two lines of print.
  canvas.fill(roundedRect(x0 + 56, y0 + 22, x0 + 96, y0 + 28, 3), APP_ICON.print);
  canvas.fill(roundedRect(x0 + 56, y0 + 36, x0 + 84, y0 + 42, 3), APP_ICON.print);
  return canvas.toPng();
}

/**
 * Draw the outline icon: the smartcard as a white line drawing on a transparent background.
 *
 * @returns a 32x32 8-bit RGBA PNG whose every pixel is white (255, 255, 255) and only alpha varies
 *   (Teams app manifest `icons.outline`: "transparent PNG outline icon ... white", 32x32)
 */
export function drawOutlineIcon(): Buffer {
  const s = APP_ICON.outline.size;
  const canvas = new Canvas(s);
  // Card outline: 2 px stroke, 28 x 18 px (ratio about 1.56).
  canvas.fill(minus(roundedRect(2, 7, 30, 25, 3.5), roundedRect(4, 9, 28, 23, 1.5)), APP_ICON.card);
  // Solid chip with one cut across it, and two lines of print.
  canvas.fill(roundedRect(7, 12, 14, 20, 1.5), APP_ICON.card);
  canvas.erase((x, y) => y >= 15 && y <= 16 && x >= 7 && x <= 14);
  canvas.fill(roundedRect(17, 12, 25, 14, 1), APP_ICON.card);
  canvas.fill(roundedRect(17, 17, 23, 19, 1), APP_ICON.card);
  return canvas.toPng([255, 255, 255]);
}

/** A decoded RGBA image. */
export interface DecodedIcon {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel, row by row from the top-left. */
  data: Buffer;
}

/**
 * Decode a PNG to 8-bit RGBA.
 *
 * @param png - the file's bytes
 * @returns width, height (pixels) and RGBA data
 * @throws Error from pngjs when the bytes are not a PNG
 */
export function decodeIcon(png: Buffer): DecodedIcon {
  const image = PNG.sync.read(png);
  return { width: image.width, height: image.height, data: image.data };
}

/**
 * Check the two icons against the rules Teams sets for an app package.
 *
 * Rules (Teams app manifest schema, `icons`; Teams app icon guidelines):
 * the colour icon is a 192x192 PNG; the outline icon is a 32x32 PNG that is
 * white on a transparent background: every pixel that shows is pure white and
 * only its alpha varies; its corners are transparent and some pixels are opaque.
 *
 * @param icons.color - the colour icon's PNG bytes
 * @param icons.outline - the outline icon's PNG bytes
 * @returns the problems found, one sentence each; empty when both icons follow the rules
 */
export function appIconProblems(icons: { color: Buffer; outline: Buffer }): string[] {
  const problems: string[] = [];
  const decode = (name: string, bytes: Buffer): DecodedIcon | null => {
    try {
      return decodeIcon(bytes);
    } catch (err) {
      problems.push(`${name} is not a readable PNG (${(err as Error).message})`);
      return null;
    }
  };
  const color = decode(APP_ICON.color.file, icons.color);
  if (color && (color.width !== APP_ICON.color.size || color.height !== APP_ICON.color.size)) {
    problems.push(`${APP_ICON.color.file} is ${color.width}x${color.height}; Teams needs ${APP_ICON.color.size}x${APP_ICON.color.size}`);
  }
  const outline = decode(APP_ICON.outline.file, icons.outline);
  if (!outline) return problems;
  const n = APP_ICON.outline.size;
  if (outline.width !== n || outline.height !== n) {
    problems.push(`${APP_ICON.outline.file} is ${outline.width}x${outline.height}; Teams needs ${n}x${n}`);
    return problems;
  }
  let coloured = 0;
  let opaque = 0;
  for (let i = 0; i < outline.data.length; i += 4) {
    const [r, g, b, a] = [outline.data[i]!, outline.data[i + 1]!, outline.data[i + 2]!, outline.data[i + 3]!];
    if (a > 0 && (r !== 255 || g !== 255 || b !== 255)) coloured++;
    if (a === 255) opaque++;
  }
  if (coloured > 0) problems.push(`${APP_ICON.outline.file} has ${coloured} visible pixels that are not pure white; Teams needs white on transparent`);
  if (opaque === 0) problems.push(`${APP_ICON.outline.file} has no opaque pixel: the glyph is missing`);
  const corners = [0, n - 1, n * (n - 1), n * n - 1].map((p) => outline.data[p * 4 + 3]!);
  if (corners.some((a) => a !== 0)) problems.push(`${APP_ICON.outline.file} has a background that is not transparent (a corner pixel has alpha > 0)`);
  return problems;
}
