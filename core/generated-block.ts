/**
 * Generated blocks inside hand-written documents (README.md): the text between a begin and an end
 * marker belongs to a generator (the benchmark, the training report) and is rewritten whole, so a
 * figure there is never typed by hand.
 */

/**
 * `text` with the block between `begin` and `end` replaced by `body` (blank lines around it, as
 * prettier formats markdown); undefined when the markers are missing or out of order.
 */
export function replaceGeneratedBlock(text: string, begin: string, end: string, body: string): string | undefined {
  const a = text.indexOf(begin);
  const b = text.indexOf(end, a + begin.length);
  if (a < 0 || b < 0) return undefined;
  return `${text.slice(0, a + begin.length)}\n\n${body.trim()}\n\n${text.slice(b)}`;
}

/** The body between `begin` and `end` (trimmed); undefined when the markers are missing or out of order. */
export function generatedBlockBody(text: string, begin: string, end: string): string | undefined {
  const a = text.indexOf(begin);
  const b = text.indexOf(end, a + begin.length);
  if (a < 0 || b < 0) return undefined;
  return text.slice(a + begin.length, b).trim();
}

/**
 * A markdown table laid out as prettier lays it out (every column padded to its widest cell, the
 * rule row of dashes as wide), so a generated table passes `prettier --check` as written.
 */
export function markdownTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(3, [...h].length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: readonly string[]) =>
    `| ${widths.map((w, i) => (cells[i] ?? '') + ' '.repeat(w - [...(cells[i] ?? '')].length)).join(' | ')} |`;
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}
