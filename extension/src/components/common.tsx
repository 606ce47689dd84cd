/**
 * Small pieces every flowdapt view shares: state badges, times, durations and item progress.
 */
import * as React from 'react';

import type { IProgress } from '../model/runs';

/** A run or stage state as a coloured label. */
export function StateBadge(props: { state: string; title?: string }): JSX.Element {
  return (
    <span className={`jp-flowdapt-state jp-flowdapt-state-${props.state}`} title={props.title ?? props.state} data-state={props.state}>
      {props.state}
    </span>
  );
}

/** Items done of the total, with the failed ones in red. */
export function ProgressBar(props: { progress: IProgress }): JSX.Element {
  const { done, failed, total } = props.progress;
  const share = (value: number) => `${total ? (100 * value) / total : 0}%`;
  return (
    <span className="jp-flowdapt-progress" title={`${done} of ${total} items done${failed ? `, ${failed} failed` : ''}`}>
      <span className="jp-flowdapt-progress-bar">
        <span className="jp-flowdapt-progress-done" style={{ width: share(done - failed) }} />
        <span className="jp-flowdapt-progress-failed" style={{ width: share(failed) }} />
      </span>
      <span className="jp-flowdapt-progress-text">
        {done}/{total}
      </span>
    </span>
  );
}

/** "12s ago", "5m ago", "3h ago", else the date. */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) {
    return '';
  }
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (seconds < 60) {
    return `${Math.floor(seconds)}s ago`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)}h ago`;
  }
  return new Date(iso).toLocaleDateString();
}

/** A local date and time with seconds. */
export function formatTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '';
}

/** "850 ms", "12.3 s", "4m 05s", "2h 03m". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes}m ${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  }
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** Seconds between two ISO times; to now when `end` is missing. */
export function secondsBetween(start: string | null | undefined, end: string | null | undefined, now = Date.now()): number | null {
  if (!start) {
    return null;
  }
  return ((end ? Date.parse(end) : now) - Date.parse(start)) / 1000;
}

/** Re-render every `ms` milliseconds (relative times, durations of running runs). */
export function useTick(ms: number): number {
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    const timer = setInterval(() => setTick(value => value + 1), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return tick;
}
