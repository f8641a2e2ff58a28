/**
 * Entry of the packaged companion (`npm run package:companion`): read the
 * settings file, then start the companion as `companion/main.ts` does.
 *
 * Settings file (KEY=value lines, `#` comments, the same names as the
 * environment variables of `companion/config.ts`): `COMPANION_CONFIG_FILE` when
 * set, else `companion.env` beside the executable when it exists. A variable
 * set in the environment wins over the file; flags win over both.
 *
 * A file named by `COMPANION_CONFIG_FILE` that cannot be read stops the start
 * with exit code 2 and a message naming the file (a deployment mistake must
 * not fall back to defaults silently).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isSea } from 'node:sea';
import { parseEnv } from 'node:util';

/** Name of the settings file looked for beside the executable. */
const SETTINGS_FILE_NAME = 'companion.env';

function loadSettingsFile(): void {
  const named = process.env['COMPANION_CONFIG_FILE'];
  const file = named && named.trim() !== '' ? path.resolve(named) : path.join(path.dirname(process.execPath), SETTINGS_FILE_NAME);
  if (!named && !existsSync(file)) return;
  let values: Record<string, string | undefined>;
  try {
    values = parseEnv(readFileSync(file, 'utf8')) as Record<string, string | undefined>;
  } catch (error) {
    process.stderr.write(`companion: COMPANION_CONFIG_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})\n`);
    process.exit(2);
  }
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined && process.env[key] === undefined) process.env[key] = value;
  }
}

/**
 * In a single executable `process.argv[1]` is the command as typed (e.g. `./smartcard-assist-companion`),
 * where a script would be: make it the executable's full path, as `companion/desktop/autostart.ts`
 * expects of a packaged companion (its login entry runs `process.execPath` with the flags).
 */
if (isSea() && process.argv.length >= 2) process.argv[1] = process.execPath;

loadSettingsFile();
// After the settings are in the environment: main.ts reads them when it runs.
void import('../companion/main');
