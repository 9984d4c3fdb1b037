/**
 * A reader that goes away before the output ends (`locmesh location ls --json --all | head -c 600`)
 * makes the next write to stdout fail with EPIPE. POSIX tools die of SIGPIPE then, silently, and the
 * shell reports 141 (128 + 13) for them: `git log | head`, `seq 1 1000000 | head -1` and `yes | head`
 * all show 141 in bash's PIPESTATUS; the pipeline's 0 is head's status. Node ignores SIGPIPE, so the
 * write failed with an 'error' event nobody handled, and the command crashed with a stack trace.
 *
 * Here the command ends the way those tools do: no message, exit status 141. Not 0: output was cut
 * short, and a script that checks (bash's `set -o pipefail`, a writer into a FIFO whose reader
 * died) must be able to tell, as it can for every other tool; without pipefail nothing changes
 * for the pipeline, whose status stays head's.
 */

/** 128 + SIGPIPE (13): what a shell reports for a process that SIGPIPE ended. */
export const EXIT_OUTPUT_CLOSED = 141;

/**
 * Ends the process quietly with EXIT_OUTPUT_CLOSED when a write to one of `streams` fails because
 * its reader is gone. Any other write error is thrown as before (an uncaught exception).
 */
export function endQuietlyWhenOutputCloses(streams: readonly NodeJS.WritableStream[], exit: (code: number) => void): void {
  for (const stream of streams) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
      exit(EXIT_OUTPUT_CLOSED);
    });
  }
}
