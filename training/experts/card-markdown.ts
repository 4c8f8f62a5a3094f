/**
 * An expert's Markdown card (models/experts/NAME-VERSION.md, the entry's cardFile), written by
 * `sonomark experts train --markdown-card` from the same card and report the manifest and the
 * report file hold: nothing typed by hand. Its first paragraph is the card's summary (as
 * `experts publish` reads a card's summary back).
 */
import type { ModelCard } from '../../core/schemas';
import type { Evaluation, Interval, SourceEvaluation } from './metrics';
import type { SourceCheck } from './source-check';

export interface CardMarkdownInput {
  readonly name: string;
  readonly version: string;
  readonly card: Omit<ModelCard, 'status' | 'cardFile'>;
  readonly labels: readonly string[];
  readonly primary: string;
  /** The chosen family's out-of-fold evaluation, and per source. */
  readonly cv: Evaluation;
  readonly cvScheme: string;
  readonly perSource?: readonly SourceEvaluation[];
  readonly loso?: {
    readonly evaluation: Evaluation;
    readonly perSource: readonly { source: string; rows: number; evaluation?: Evaluation }[];
  };
  readonly sourceCheck?: SourceCheck;
  /** The command line that trained it. */
  readonly command: string;
}

const f2 = (m: Interval | undefined) =>
  m ? `${m.value.toFixed(3)}${m.ci95 ? ` [${m.ci95[0].toFixed(3)}, ${m.ci95[1].toFixed(3)}]` : ''}` : 'n/a';

/** The metrics a card table shows, in this order, where the evaluation has them. */
const SHOWN = ['auc', 'balancedAccuracy', 'sensitivity', 'specificity', 'macroF1', 'accuracy', 'mae', 'qwk', 'ece'];

function metricsTable(rows: { what: string; rows: number; perClass?: string; e: Evaluation | undefined }[]): string {
  const keys = SHOWN.filter((k) => rows.some((r) => r.e?.metrics[k]));
  const head = `| | rows | ${keys.join(' | ')} |\n|---|---|${keys.map(() => '---').join('|')}|`;
  const body = rows.map(
    (r) =>
      `| ${r.what} | ${r.rows}${r.perClass ? ` (${r.perClass})` : ''} | ${keys.map((k) => f2(r.e?.metrics[k])).join(' | ')} |`,
  );
  return [head, ...body].join('\n');
}

export function cardMarkdown(input: CardMarkdownInput): string {
  const { card, labels } = input;
  const perClass = (counts: readonly number[]) => labels.map((l, c) => `${l} ${counts[c]}`).join(', ');
  const out: string[] = [
    `# ${input.name} ${input.version}`,
    '',
    card.summary,
    '',
    '## Intended use',
    '',
    card.intendedUse,
    '',
    '## Training data',
    '',
    card.trainingData,
    '',
    '## Evaluation',
    '',
    `${input.cvScheme}; 95% intervals by percentile bootstrap over whole patients/groups. Primary metric: ${input.primary}.`,
    '',
    metricsTable([
      { what: 'all rows (grouped CV)', rows: input.cv.rows, e: input.cv },
      ...(input.perSource ?? []).map((s) => ({
        what: `source ${s.source}`,
        rows: s.rows,
        perClass: perClass(s.perClass),
        e: s.evaluation,
      })),
    ]),
    '',
    `Confusion matrix (rows true, columns predicted; ${labels.join(', ')}): ${JSON.stringify(input.cv.confusion.matrix)}.`,
  ];
  const c = input.sourceCheck;
  if (c) {
    out.push('', '## Does it read the source?', '', c.summary, '');
    const rows: string[] = ['| check | value |', '|---|---|'];
    if (c.classifier) {
      const k = c.classifier.task === 'binary' ? 'auc' : 'balancedAccuracy';
      rows.push(
        `| source classifier on the same features (linear, same folds): ${k} | ${f2(c.classifier.evaluation.metrics[k])}${k === 'balancedAccuracy' ? ` (chance ${c.classifier.chance.toFixed(2)})` : ''} |`,
      );
    }
    rows.push(
      `| label from the source alone: ${input.primary} | ${f2(c.sourceOnly.metrics[input.primary])} |`,
      `| label without the source (class frequencies): ${input.primary} | ${f2(c.noSource.metrics[input.primary])} |`,
      `| sources holding two classes (scored within) | ${c.mixedSources.join(', ') || 'none'} |`,
    );
    out.push(rows.join('\n'), '');
    out.push(c.flags.length > 0 ? c.flags.map((f) => `- **Flag:** ${f}`).join('\n') : 'No flag raised.');
  }
  if (input.loso) {
    out.push(
      '',
      '## Leave one source out',
      '',
      metricsTable([
        { what: 'pooled held-out sources', rows: input.loso.evaluation.rows, e: input.loso.evaluation },
        ...input.loso.perSource.map((s) => ({ what: `held out ${s.source}`, rows: s.rows, e: s.evaluation })),
      ]),
    );
  }
  out.push('', '## Limitations', '', ...card.limitations.map((l) => `- ${l}`));
  out.push('', '## Reproduce', '', '```', input.command, '```', '');
  return out.join('\n');
}
