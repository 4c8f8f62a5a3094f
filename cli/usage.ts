/** `sonomark usage --site S --month YYYY-MM [--json]`: a site's monthly usage, the numbers GET /usage gives. */
import * as path from 'node:path';
import type { Command } from 'commander';
import type { UsageSummary } from '../core/usage';
import { UsageError, type CliContext } from './context';

interface UsageCliOptions {
  site: string;
  month: string;
  dataDir: string;
  json?: boolean;
  modelsDir?: string;
}

const usd = (n: number): string => `$${n.toFixed(6)}`;

export function usageTable(s: UsageSummary): string {
  return [
    `Site ${s.siteId} (${s.displayName}), ${s.month}`,
    `  scans billed        ${s.scansBilled}`,
    `  not billed          ${s.scansNotBilled.failed} failed, ${s.scansNotBilled.running} running`,
    `  extractor seconds   ${s.extractorSeconds}`,
    `  expert ms           ${s.expertMs}`,
    `  extractor           ${usd(s.cost.extractorUsd)}`,
    `  experts             ${usd(s.cost.expertsUsd)}`,
    `  Lambda requests     ${usd(s.cost.requestsUsd)}`,
    `  state transitions   ${usd(s.cost.stateTransitionsUsd)}`,
    `  total               ${usd(s.cost.totalUsd)}${s.unpricedScans > 0 ? ` (${s.unpricedScans} scans unpriced)` : ''}`,
    `  prices: ${s.basis}`,
  ].join('\n');
}

export function registerUsage(program: Command, ctx: CliContext): void {
  program
    .command('usage')
    .summary("a site's monthly usage and its cost from the price table")
    .description(
      'The usage summary of one site and month from a local data directory: completed scans billed (failed ones ' +
        'and re-uploads of bytes already analysed are not), extractor seconds, expert milliseconds and the cost ' +
        'by part at the default price table. The same numbers as GET /usage of "sonomark serve".',
    )
    .requiredOption('--site <ID>', 'site id')
    .requiredOption('--month <YYYY-MM>', 'calendar month (UTC) the scans were received in')
    .option('--data-dir <DIR>', 'the data directory of "sonomark serve" or "sonomark analyze"', '.sonomark/local')
    .option('--json', 'print the summary as one JSON object (the API body)')
    .option('--models-dir <DIR>', "models whose expert sizes price the scans (default: the package's models/)")
    .action(async (opts: UsageCliOptions) => {
      // Imported here, not at the top: main.ts loads every command module, and the results store
      // behind core/usage (zod, the DynamoDB client) would slow every other command's start.
      const [{ SegmentId }, { Month }] = await Promise.all([import('../core/schemas'), import('../core/usage')]);
      const site = SegmentId.safeParse(opts.site);
      if (!site.success) throw new UsageError(`--site ${site.error.issues[0]?.message ?? 'is invalid'}.`);
      const month = Month.safeParse(opts.month);
      if (!month.success) throw new UsageError(`--month ${month.error.issues[0]?.message ?? 'is invalid'}.`);
      const [{ startLocalServices }, { localScanRates }, names, { loadManifest }, { siteUsage }] = await Promise.all([
        import('../local/services'),
        import('../local/handlers'),
        import('../local/names'),
        import('../core/manifest'),
        import('../core/usage'),
      ]);
      const rates = localScanRates(loadManifest(opts.modelsDir ? path.resolve(opts.modelsDir) : undefined));
      const services = await startLocalServices(path.resolve(opts.dataDir));
      try {
        let summary: UsageSummary;
        try {
          summary = await siteUsage(
            services.doc,
            names.LOCAL_TABLE,
            { id: opts.site, displayName: opts.site },
            opts.month,
            rates,
          );
        } catch (e) {
          if ((e as { name?: string }).name === 'ResourceNotFoundException')
            throw new UsageError(`Nothing analysed in ${opts.dataDir} yet.`);
          throw e;
        }
        ctx.out.write((opts.json ? JSON.stringify(summary) : usageTable(summary)) + '\n');
      } finally {
        await services.close();
      }
      ctx.exit(0);
    });
}
