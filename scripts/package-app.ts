/**
 * `npm run package`: build the Teams app package (appPackage.zip) from
 * manifest/ and the settings in the environment.
 *
 * Usage: npm run package -- [--env-file FILE] [--out FILE]
 *   --env-file FILE  read settings from a KEY=value file; the process environment wins over it
 *   --out FILE       where to write the zip (default dist/appPackage.zip)
 *
 * Settings: see APP_PACKAGE_SETTINGS in manifest/app-package.config.ts and docs/teams-app.md.
 * Exit codes: 0 written; 2 a setting is missing or wrong (each one named); 1 anything else.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, parseEnv } from 'node:util';
import { AppError } from '../common/app-error';
import { buildAppPackage } from '../manifest/app-package';
import { loadAppPackageConfig } from '../manifest/app-package.config';

async function main(): Promise<number> {
  let values: { 'env-file'?: string; out?: string };
  try {
    ({ values } = parseArgs({ options: { 'env-file': { type: 'string' }, out: { type: 'string' } }, strict: true }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nUsage: npm run package -- [--env-file FILE] [--out FILE]\n`);
    return 2;
  }
  let fileEnv: Record<string, string | undefined> = {};
  if (values['env-file']) {
    try {
      fileEnv = parseEnv(await readFile(values['env-file'], 'utf8'));
    } catch (err) {
      process.stderr.write(`--env-file: cannot read ${values['env-file']} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})\n`);
      return 2;
    }
  }
  const out = path.resolve(values.out ?? path.join('dist', 'appPackage.zip'));
  try {
    const config = loadAppPackageConfig({ ...fileEnv, ...process.env });
    const { zip } = await buildAppPackage(config);
    await mkdir(path.dirname(out), { recursive: true });
    // Write beside the target, then rename: a reader never sees half a zip.
    const partial = `${out}.${process.pid}.partial`;
    await writeFile(partial, zip);
    await rename(partial, out);
    process.stdout.write(
      `Wrote ${out} (Teams app id ${config.appId}, version ${config.version}).\n` +
        `Set the Azure Bot's messaging endpoint to ${config.messagingEndpoint}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof AppError) {
      process.stderr.write(`${err.message}\n`);
      return err.code === 'CONFIG.INVALID' ? 2 : 1;
    }
    throw err;
  }
}

process.exitCode = await main();
