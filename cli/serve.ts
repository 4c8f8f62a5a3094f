/** `sonomark serve [--data-dir D] [--port P] [--sites a,b]`: the multi-site API on 127.0.0.1 (local/serve.ts). */
import * as path from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context';
import { integerAtLeast, list } from './options';

interface ServeCliOptions {
  dataDir: string;
  port: number;
  sites: string[];
  modelsDir?: string;
}

export function registerServe(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .summary('serve the multi-site upload, results and usage API on 127.0.0.1')
    .description(
      'Serve the API the cloud deploys behind API Gateway (POST /uploads, GET /scans/{scanId}, ' +
        'GET /studies/{studyId}/scans, GET /scans?from=&to=, GET /usage?month=YYYY-MM, GET /cohorts/{runId}/report) on ' +
        '127.0.0.1, against ' +
        "local mode's S3 (s3rver) and DynamoDB (dynalite) in --data-dir. Each site gets a bearer token (kept in " +
        'DIR/api-tokens.json, printed at start) standing in for its IAM role; an upload through the returned ' +
        'presigned POST starts the local workflow. Runs until interrupted (Ctrl-C).',
    )
    .option('--data-dir <DIR>', 'keep S3/DynamoDB data and the tokens here', '.sonomark/local')
    .option('--port <N>', 'port on 127.0.0.1 (0: any free one)', integerAtLeast(0), 8787)
    .option('--sites <IDS>', 'comma-separated site ids to register', list, ['local'])
    .option('--models-dir <DIR>', "models to analyse with (default: the package's models/)")
    .addHelpText(
      'after',
      `
Example (see README "Multi-site API"):
  $ sonomark serve --data-dir .sonomark/api --sites site-a,site-b
  $ curl -s -H "Authorization: Bearer $TOKEN" -d '{"studyId":"s1","fileName":"clip.mp4"}' \\
      http://127.0.0.1:8787/uploads`,
    )
    .action(async (opts: ServeCliOptions) => {
      const { startLocalApi } = await import('../local/serve');
      const dataDir = path.resolve(opts.dataDir);
      const server = await startLocalApi({
        dataDir,
        port: opts.port,
        sites: opts.sites,
        modelsDir: opts.modelsDir,
        onAnalyzed: (r) => ctx.err.write(`analysed scan ${r.scanId ?? '(none)'}: ${r.status}\n`),
      });
      ctx.out.write(`sonomark API on ${server.url} (data in ${dataDir})\n`);
      ctx.out.write(`Tokens (${server.tokensFile}):\n`);
      for (const [site, token] of Object.entries(server.tokens)) {
        if (opts.sites.includes(site)) ctx.out.write(`  ${site}: ${token}\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      ctx.exit(0);
    });
}
