/**
 * Read the settings tables of docs/configuration.md and the environment variables named in a configuration
 * source file, so unit specs can check that the two agree (issue #11: every setting is documented).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Setting names in the first column of the tables of one `## ` section of docs/configuration.md. */
export function documentedSettings(section: 'Bot' | 'Companion'): string[] {
  const doc = readFileSync(path.join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const start = doc.indexOf(`\n## ${section}\n`);
  if (start < 0) throw new Error(`docs/configuration.md has no "## ${section}" section`);
  const end = doc.indexOf('\n## ', start + 1);
  const part = doc.slice(start, end < 0 ? undefined : end);
  return [...part.matchAll(/^\| `([A-Za-z][A-Za-z0-9_]*)` \|/gm)].map((m) => m[1]!);
}

/**
 * Environment variables named in a configuration source file: schema keys (`NAME: z...`), `env['NAME']`
 * reads, and string literals that look like a variable (`'GRAPH_SENDER'`, as the GRAPH_ENV table holds them).
 */
export function variablesIn(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const names = new Set<string>();
  for (const m of src.matchAll(/^\s+((?:[A-Z][A-Z0-9]*_)*[A-Z][A-Z0-9]*|Microsoft[A-Za-z]+)\s*:\s*(?:z\b|bool\b|domainList\b|httpsOrigin\b|intIn\b|optionalText\b)/gm)) names.add(m[1]!);
  for (const m of src.matchAll(/env\[['"]([A-Za-z_][A-Za-z0-9_]*)['"]\]/g)) names.add(m[1]!);
  for (const m of src.matchAll(/['"]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)['"]/g)) names.add(m[1]!);
  return [...names];
}
