/**
 * The runs list: rows newest first, loaded a page at a time from `GET runs` with the list's filters,
 * and changed in place by live events (a new run goes on top, states and item progress change).
 * Rows are replaced, never mutated, so a row component re-renders only when its run changed.
 */
import { ISignal, Signal } from '@lumino/signaling';

import type { RunSource, RunState, StageRun, WorkflowRun } from '../api';
import type { ILiveEvent } from '../live';

export const TERMINAL_STATES: ReadonlySet<RunState> = new Set(['finished', 'failed', 'cancelled', 'interrupted']);
export const ACTIVE_STATES: ReadonlySet<RunState> = new Set(['pending', 'running']);

export interface IRunFilters {
  workflow?: string;
  state?: RunState;
  source?: RunSource;
}

/** Items of a run's parameterized stages that are running. */
export interface IProgress {
  done: number;
  failed: number;
  total: number;
}

export interface IRunRow {
  uid: string;
  name: string;
  workflow: string;
  state: RunState;
  source: RunSource;
  executor: string;
  started_at: string | null;
  finished_at: string | null;
  error: { type: string; message: string; stage?: string | null } | null;
  progress: IProgress | null;
  /** Stage records seen in live events, by name. */
  stages: Readonly<Record<string, StageRun>>;
}

/** A row from a run as the REST API serves it. */
export function rowOf(run: WorkflowRun): IRunRow {
  const stages: Record<string, StageRun> = {};
  for (const stage of run.stages ?? []) {
    stages[stage.name] = stage;
  }
  return {
    uid: run.uid,
    name: run.name,
    workflow: run.workflow,
    state: run.state,
    source: run.source,
    executor: run.executor,
    started_at: run.started_at ?? null,
    finished_at: run.finished_at ?? null,
    error: run.error ?? null,
    progress: progressOf(run.state, stages),
    stages
  };
}

/** The row after a live run, stage or progress event (`row` is undefined for a run not listed yet). */
export function applyEvent(row: IRunRow | undefined, event: ILiveEvent): IRunRow | undefined {
  const run = event.run;
  if (!run) {
    return row;
  }
  const at = new Date(event.time * 1000).toISOString();
  const next: IRunRow = row
    ? { ...row, state: run.state }
    : {
        uid: run.uid,
        name: run.name,
        workflow: run.workflow,
        state: run.state,
        source: run.source,
        executor: run.executor,
        started_at: null,
        finished_at: null,
        error: null,
        progress: null,
        stages: {}
      };
  if (run.state === 'running' && !next.started_at) {
    next.started_at = at;
  }
  if (event.kind === 'run' && TERMINAL_STATES.has(run.state)) {
    next.finished_at = next.finished_at ?? at;
    next.error = run.error ?? null;
  }
  if (event.stage && (event.kind === 'stage' || event.kind === 'progress')) {
    next.stages = { ...next.stages, [event.stage.name]: event.stage };
  }
  next.progress = progressOf(next.state, next.stages);
  return next;
}

function progressOf(state: RunState, stages: Record<string, StageRun>): IProgress | null {
  if (!ACTIVE_STATES.has(state)) {
    return null;
  }
  let found: IProgress | null = null;
  for (const stage of Object.values(stages)) {
    if (stage.state === 'running' && typeof stage.items_total === 'number') {
      found = found ?? { done: 0, failed: 0, total: 0 };
      found.done += stage.items_done ?? 0;
      found.failed += stage.items_failed ?? 0;
      found.total += stage.items_total;
    }
  }
  return found;
}

export function matches(row: Pick<IRunRow, 'workflow' | 'state' | 'source'>, filters: IRunFilters): boolean {
  return (
    (!filters.workflow || row.workflow === filters.workflow) &&
    (!filters.state || row.state === filters.state) &&
    (!filters.source || row.source === filters.source)
  );
}

/** The rows of the runs list, newest first. */
export class RunsModel {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get rows(): readonly IRunRow[] {
    return this._rows;
  }

  get filters(): IRunFilters {
    return this._filters;
  }

  /** Whether older runs than the rows may exist (the last page was full). */
  get hasMore(): boolean {
    return this._hasMore;
  }

  get(uid: string): IRunRow | undefined {
    return this._byUid.get(uid);
  }

  /** Replace the rows with the first page for `filters`. */
  reset(runs: WorkflowRun[], filters: IRunFilters, pageSize: number): void {
    this._filters = { ...filters };
    this._rows = [];
    this._byUid.clear();
    this.append(runs, pageSize);
  }

  /** Add an older page (runs already listed are skipped: new runs shifted the offsets). */
  append(runs: WorkflowRun[], pageSize: number): void {
    const added = [];
    for (const run of runs) {
      if (!this._byUid.has(run.uid)) {
        const row = rowOf(run);
        this._byUid.set(row.uid, row);
        added.push(row);
      }
    }
    this._rows = this._rows.concat(added);
    this._hasMore = runs.length >= pageSize;
    this._changed.emit();
  }

  /** Apply a live event; returns the run's row as it is now (also when the filters hide it). */
  apply(event: ILiveEvent): IRunRow | undefined {
    if (!event.run) {
      return undefined;
    }
    const uid = event.run.uid;
    const known = this._byUid.get(uid);
    const row = applyEvent(known, event)!;
    const visible = matches(row, this._filters);
    if (known && visible) {
      this._byUid.set(uid, row);
      this._rows = this._rows.map(item => (item.uid === uid ? row : item));
    } else if (known) {
      this._byUid.delete(uid);
      this._rows = this._rows.filter(item => item.uid !== uid);
    } else if (visible) {
      this._byUid.set(uid, row);
      this._rows = [row, ...this._rows];
    } else {
      return row;
    }
    this._changed.emit();
    return row;
  }

  private _rows: IRunRow[] = [];
  private _byUid = new Map<string, IRunRow>();
  private _filters: IRunFilters = {};
  private _hasMore = false;
  private _changed = new Signal<this, void>(this);
}
