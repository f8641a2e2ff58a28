/**
 * The tray icon's pictures: a 22x22 smartcard (PNG, base64) in the colour of
 * the state (issue #13): grey = not paired or not connected, blue = connected
 * with no card, green = card OK, red = card locked. Drawn for this project
 * (scripted pixels, no third-party artwork). Windows wants an ICO: {@link icoFromPng}.
 */

/** The four pictures, PNG as base64. */
export const TRAY_ICONS = {
  grey: 'iVBORw0KGgoAAAANSUhEUgAAABYAAAAWCAYAAADEtGw7AAAAX0lEQVR4Ae3BMRHDQBAEwbktwRIIw1kh8MERCPN6K1D0mat+HambR1xxsz1YoLuLS3GxPViou0uEiJCNyfv1YXacO78SISJEhIiQjclx7qwgQkSICClutgcLdHfx+Isv1koQg1h7NbQAAAAASUVORK5CYII=',
  blue: 'iVBORw0KGgoAAAANSUhEUgAAABYAAAAWCAYAAADEtGw7AAAAXUlEQVR4Ae3BsRGAIBREwfdvLI4qKMAaCK3BAqiC7lADEjJnOCN3+dkFQ26dFWoKbsEjt85KNYUwESYbk74fzOIsvCVMhIkwESYbkzgLKwgTYSJMgiG3zgo1Bb9PXKeaDTGCdbuDAAAAAElFTkSuQmCC',
  green: 'iVBORw0KGgoAAAANSUhEUgAAABYAAAAWCAYAAADEtGw7AAAAXElEQVR4Ae3BwQ2AIBREwfc3VGQF1ENB1EMFVGSCeuDCzYT15Aw/u2CqebBDacEteNQ82Km0ECbCJLEYx8kqeuItYSJMhIkwSSyiJ3YQJsJEmARTzYMdSgt+n7gAsUMM8aMIjuoAAAAASUVORK5CYII=',
  red: 'iVBORw0KGgoAAAANSUhEUgAAABYAAAAWCAYAAADEtGw7AAAAZUlEQVR4Ae3BoRHDMBREwfdvXIZAeERVlqtJWaIyN1AfioGRWGZ0Qd7lYRfcWkmDBXLtwSW4tJIGC+XaQ5gIk43J+/NiduwnvxImwkSYCJONybGfrCBMhIkwCW6tpMECufbg8Rdfzs8RQAHokvAAAAAASUVORK5CYII=',
} as const;

export type TrayIconName = keyof typeof TRAY_ICONS;

/**
 * Wrap a PNG in an ICO container (one image; Windows Vista and later read PNG entries), for the
 * Windows tray program, which takes ICO only.
 *
 * @param png - PNG bytes, at most 256x256
 * @param size - its width and height in pixels (square)
 * @returns ICO bytes: ICONDIR (6 bytes), one ICONDIRENTRY (16 bytes), the PNG
 */
export function icoFromPng(png: Buffer, size: number): Buffer {
  const header = Buffer.alloc(22);
  header.writeUInt16LE(0, 0); // reserved
  header.writeUInt16LE(1, 2); // type 1 = icon
  header.writeUInt16LE(1, 4); // one image
  header.writeUInt8(size >= 256 ? 0 : size, 6); // width (0 = 256)
  header.writeUInt8(size >= 256 ? 0 : size, 7); // height
  header.writeUInt8(0, 8); // no palette
  header.writeUInt8(0, 9); // reserved
  header.writeUInt16LE(1, 10); // colour planes
  header.writeUInt16LE(32, 12); // bits per pixel
  header.writeUInt32LE(png.length, 14); // image size
  header.writeUInt32LE(22, 18); // image offset
  return Buffer.concat([header, png]);
}
