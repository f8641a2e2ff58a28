/**
 * Build the Teams app package: fill the manifest template from configuration,
 * check it against the Teams manifest schema and the icons against Teams' icon
 * rules, and zip manifest.json, color.png and outline.png at the zip's root.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { strToU8, zipSync } from 'fflate';
import { AppError } from '../common/app-error';
import { APP_ICON, appIconProblems } from './app-icons';
import type { AppPackageConfig } from './app-package.config';
import { checkTeamsManifest } from './teams-manifest.schema';

/** This folder: the template and the icons. */
export const MANIFEST_DIR = path.dirname(fileURLToPath(import.meta.url));

/** The files at the root of appPackage.zip, in this order. */
export const APP_PACKAGE_FILES = ['manifest.json', APP_ICON.color.file, APP_ICON.outline.file] as const;

/** A `${{name}}` placeholder in a string value of the template (the Teams Toolkit convention). */
const PLACEHOLDER = /\$\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}/g;

/** Fixed timestamp for every zip entry, so one input always makes the same zip. */
const ZIP_MTIME = new Date(2026, 0, 1, 0, 0, 0);

/** The placeholder values a template may use: every string field of the config. */
type Fill = Record<string, string>;

function fillValue(value: unknown, fill: Fill, where: string, unknown: Set<string>): unknown {
  if (typeof value === 'string') {
    return value.replace(PLACEHOLDER, (whole: string, name: string) => {
      const v = fill[name];
      if (v === undefined) {
        unknown.add(`${name} (at ${where || '/'})`);
        return whole;
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => fillValue(v, fill, `${where}/${i}`, unknown));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillValue(v, fill, `${where}/${k}`, unknown)]));
  }
  return value;
}

/**
 * Fill the `${{name}}` placeholders of a manifest template.
 *
 * @param template - the parsed manifest template (manifest/manifest.json)
 * @param config - values from {@link loadAppPackageConfig}; each string field is a placeholder name
 * @returns a new manifest object; the template is not changed
 * @throws AppError `MANIFEST.UNKNOWN_PLACEHOLDER` naming each placeholder that has no value, and where it is
 */
export function fillManifest(template: unknown, config: AppPackageConfig): Record<string, unknown> {
  const fill: Fill = Object.fromEntries(Object.entries(config).filter(([, v]) => typeof v === 'string'));
  const unknown = new Set<string>();
  const filled = fillValue(template, fill, '', unknown);
  if (unknown.size > 0) {
    throw new AppError('MANIFEST.UNKNOWN_PLACEHOLDER', `The manifest template uses placeholders with no value: ${[...unknown].join(', ')}`);
  }
  if (filled === null || typeof filled !== 'object' || Array.isArray(filled)) {
    throw new AppError('MANIFEST.INVALID', 'The manifest template is not a JSON object');
  }
  return filled as Record<string, unknown>;
}

/** What {@link buildAppPackage} made. */
export interface AppPackage {
  /** The zip's bytes. */
  zip: Uint8Array;
  /** The filled manifest that is inside the zip as manifest.json. */
  manifest: Record<string, unknown>;
}

/**
 * Build appPackage.zip in memory.
 *
 * @param config - validated settings ({@link loadAppPackageConfig})
 * @param sourceDir - folder holding manifest.json (template), color.png and outline.png; defaults to this folder
 * @returns the zip bytes (three entries at the root: {@link APP_PACKAGE_FILES}) and the filled manifest
 * @throws AppError `MANIFEST.SCHEMA_INVALID` with every schema problem (Teams manifest JSON schema, offline),
 *   `MANIFEST.ICON_INVALID` with every icon problem (Teams icon rules), `MANIFEST.UNKNOWN_PLACEHOLDER`,
 *   or `MANIFEST.INVALID` when the template is not JSON
 */
export async function buildAppPackage(config: AppPackageConfig, sourceDir: string = MANIFEST_DIR): Promise<AppPackage> {
  const templateText = await readFile(path.join(sourceDir, 'manifest.json'), 'utf8');
  let template: unknown;
  try {
    template = JSON.parse(templateText);
  } catch (err) {
    throw new AppError('MANIFEST.INVALID', `${path.join(sourceDir, 'manifest.json')} is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = fillManifest(template, config);
  const check = checkTeamsManifest(manifest);
  if (!check.ok) {
    const lines = check.problems.map((p) => `${p.path || '/'}: ${p.message}`);
    throw new AppError('MANIFEST.SCHEMA_INVALID', `manifest.json does not follow the Teams manifest schema:\n  ${lines.join('\n  ')}`, {
      meta: { problems: check.problems.length },
    });
  }
  const icons = {
    color: await readFile(path.join(sourceDir, APP_ICON.color.file)),
    outline: await readFile(path.join(sourceDir, APP_ICON.outline.file)),
  };
  const iconProblems = appIconProblems(icons);
  if (iconProblems.length > 0) {
    throw new AppError('MANIFEST.ICON_INVALID', `The app icons break the Teams icon rules:\n  ${iconProblems.join('\n  ')}`);
  }
  const zip = zipSync(
    {
      'manifest.json': strToU8(`${JSON.stringify(manifest, null, 2)}\n`),
      [APP_ICON.color.file]: icons.color,
      [APP_ICON.outline.file]: icons.outline,
    },
    { level: 9, mtime: ZIP_MTIME },
  );
  return { zip, manifest };
}
