/**
 * Draw the Teams app icons into `manifest/` (or `--out-dir DIR`).
 *
 * Usage: npx tsx manifest/app-icons.main.ts [--out-dir DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { APP_ICON, appIconProblems, drawColorIcon, drawOutlineIcon } from './app-icons';

const { values } = parseArgs({ options: { 'out-dir': { type: 'string' } }, strict: true });
const outDir = path.resolve(values['out-dir'] ?? path.dirname(fileURLToPath(import.meta.url)));
const icons = { color: drawColorIcon(), outline: drawOutlineIcon() };
const problems = appIconProblems(icons);
if (problems.length > 0) {
  process.stderr.write(`The drawn icons break the Teams icon rules:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
await mkdir(outDir, { recursive: true });
await writeFile(path.join(outDir, APP_ICON.color.file), icons.color);
await writeFile(path.join(outDir, APP_ICON.outline.file), icons.outline);
process.stdout.write(`Wrote ${path.join(outDir, APP_ICON.color.file)} and ${path.join(outDir, APP_ICON.outline.file)}\n`);
