// `coalesced(run)`: a function that runs `run` at most once at a time and at most once per `gapMs`. The
// first call runs at once; calls meanwhile fold into one more run after the gap. Never rejects (errors go
// to `onError`). A burst of 3,000 writes thus costs a handful of status re-reads and drain wake-ups.
import type { TimerPort } from './ports.ts';

export function coalesced(run: () => Promise<void>, onError: (error: unknown) => void, gapMs: number, timers: TimerPort): () => void {
  let busy = false;
  let again = false;
  const go = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      await run();
    } catch (error) {
      onError(error);
    }
    timers.setTimeout(() => {
      busy = false;
      if (!again) return;
      again = false;
      void go();
    }, gapMs);
  };
  return () => void go();
}
