/**
 * `sonomark`: the command line of local mode, on commander. Each command lives in
 * its own module and registers itself with register<Name>(program, ctx); this
 * file builds the program, runs it on argv, and maps every outcome to an exit
 * status: 0 ok, 1 an input or the run failed, 2 a usage error (commander's own
 * or a UsageError from a command). Nothing here calls process.exit:
 * bin/sonomark.js sets process.exitCode from main's result.
 *
 * Command modules import their heavy dependencies (the local workflow,
 * onnxruntime, the training code) inside their actions, so --help and
 * --version load none of them.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { PACKAGE_ROOT } from '../core/paths';
import { registerAnalyze } from './analyze';
import { registerCohort } from './cohort';
import { UsageError, type CliContext } from './context';
import { registerExperts } from './experts';
import { registerFeatures } from './features';
import { registerFrames } from './frames';
import { registerModels } from './models';
import { registerReport } from './report';
import { registerServe } from './serve';
import { registerRescore } from './rescore';
import { registerTrain } from './train';
import { registerUsage } from './usage';

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The terminal's width when the stream is one, else commander's default of 80 columns. */
function helpWidth(stream: NodeJS.WritableStream): number {
  const tty = stream as NodeJS.WriteStream;
  return tty.isTTY && tty.columns > 0 ? tty.columns : 80;
}

/** What main prints after a usage error: the command's usage line and where to find the rest. */
export function usageHint(cmd: Command): string {
  const name = [cmd, ...ancestors(cmd)]
    .map((c) => c.name())
    .reverse()
    .join(' ');
  return `Usage: ${cmd.createHelp().commandUsage(cmd)}\nRun "${name} --help" for ${cmd.commands.length > 0 ? 'the commands' : 'the options'}.`;
}

function ancestors(cmd: Command): Command[] {
  const list: Command[] = [];
  for (let c = cmd.parent; c; c = c.parent) list.push(c);
  return list;
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

/** The whole command tree, writing to ctx's streams and throwing instead of exiting. */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('sonomark')
    .description(
      'Lung ultrasound batch analysis, local mode: the same Step Functions workflow the cloud runs, on s3rver and ' +
        'dynalite, plus the tools that build its models.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    // Subcommands inherit everything below; `experts train --version X.Y.Z` needs positional
    // options so that the program's --version is only recognised before the command.
    .enablePositionalOptions()
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => ctx.out.write(s),
      writeErr: (s) => ctx.err.write(s),
      getOutHelpWidth: () => helpWidth(ctx.out),
      getErrHelpWidth: () => helpWidth(ctx.err),
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .addHelpText(
      'after',
      `
Run "sonomark <command> --help" for a command's options and examples.
Exit status: 0 when every input completed, 1 when any failed, 2 on a usage error.`,
    );

  registerAnalyze(program, ctx);
  registerFrames(program, ctx);
  registerFeatures(program, ctx);
  registerExperts(program, ctx);
  registerModels(program, ctx);
  registerReport(program, ctx);
  registerRescore(program, ctx);
  registerCohort(program, ctx);
  registerTrain(program, ctx);
  registerServe(program, ctx);
  registerUsage(program, ctx);

  // After commander's own usage errors (unknown option, missing argument, ...), the usage line.
  for (const cmd of allCommands(program)) cmd.showHelpAfterError(usageHint(cmd));
  return program;
}

/** Exit status for commander's own outcomes: help and version are 0, every usage error 2. */
function commanderStatus(e: CommanderError): number {
  switch (e.code) {
    case 'commander.helpDisplayed':
    case 'commander.version':
      return 0;
    case 'commander.help':
      // `sonomark help` exits 0; `sonomark` or `sonomark experts` alone print the help to stderr as an error.
      return e.exitCode === 0 ? 0 : 2;
    default:
      return 2;
  }
}

export async function main(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let status = 0;
  const ctx: CliContext = {
    out,
    err,
    exit: (code) => {
      status = code;
    },
  };
  let active: Command | undefined;
  try {
    const program = buildProgram(ctx);
    active = program;
    program.hook('preAction', (_program, actionCommand) => {
      active = actionCommand;
    });
    await program.parseAsync(argv, { from: 'user' });
    return status;
  } catch (e) {
    if (e instanceof CommanderError) return commanderStatus(e);
    if (e instanceof UsageError) {
      err.write(`error: ${e.message}\n${active ? usageHint(active) + '\n' : ''}`);
      return 2;
    }
    err.write(`sonomark: ${(e as Error).message ?? String(e)}\n`);
    return 1;
  }
}
