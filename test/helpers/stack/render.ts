// Renders a deploy/ template: replaces every @NAME@ with vars[NAME] (plain string replace).
// Throws if a variable is missing, or if any @NAME@ is left in the result, so a template and the
// harness can never silently drift apart.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository's deploy/ folder. */
export const DEPLOY_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../deploy');

const PLACEHOLDER = /@([A-Z][A-Z0-9_]*)@/g;

export function renderString(template: string, vars: Record<string, string | number>, what = 'template'): string {
  const missing = new Set<string>();
  const out = template.replace(PLACEHOLDER, (whole, name: string) => {
    const v = vars[name];
    if (v === undefined) {
      missing.add(name);
      return whole;
    }
    return String(v);
  });
  if (missing.size > 0) throw new Error(`${what}: no value for ${[...missing].map((n) => `@${n}@`).join(', ')}`);
  const left = out.match(PLACEHOLDER);
  if (left) throw new Error(`${what}: placeholder(s) left after rendering: ${left.join(', ')}`);
  return out;
}

/** Renders deploy/<rel> and writes it to dest (mode 0644 unless given). Returns the text. */
export function renderTemplate(rel: string, dest: string, vars: Record<string, string | number>, mode = 0o644): string {
  const src = path.join(DEPLOY_DIR, rel);
  const text = renderString(fs.readFileSync(src, 'utf8'), vars, `deploy/${rel}`);
  fs.writeFileSync(dest, text, { mode });
  fs.chmodSync(dest, mode);
  return text;
}
