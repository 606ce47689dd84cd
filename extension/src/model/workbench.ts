/**
 * The state the sidebar and the views share: workflows with their latest run, the runs list,
 * triggers with their firings, the server's status, and which runs are active. Loaded from the
 * REST API, then kept current by live events; reloaded when the live stream says events were missed.
 */
import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { FlowdaptAPI, IServerStatus, Trigger, TriggerFiring, Workflow, WorkflowRun } from '../api';
import { IEventSource, ILiveEvent, LiveStream } from '../live';
import { ACTIVE_STATES, applyEvent, IRunFilters, IRunRow, rowOf, RunsModel, TERMINAL_STATES } from './runs';

export const RUNS_PAGE_SIZE = 500;
const FIRINGS_KEPT = 20;
const RECENTLY_ENDED_KEPT = 100;

export class WorkbenchModel implements IDisposable {
  constructor(
    readonly api: FlowdaptAPI,
    events: IEventSource
  ) {
    this.live = new LiveStream(events);
    this.live.event.connect((_, event) => this._onEvent(event));
    this.live.resync.connect(() => void this.refresh());
    this.live.connectedChanged.connect(() => this._changed.emit());
  }

  readonly live: LiveStream;
  readonly runs = new RunsModel();

  /** Workflows, triggers, status, latest runs or the connection changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Every live run, stage and progress event, with the run's row as it is after it. */
  get runChanged(): ISignal<this, { event: ILiveEvent; row: IRunRow }> {
    return this._runChanged;
  }

  /** A run started from this page ended. */
  get ownRunEnded(): ISignal<this, IRunRow> {
    return this._ownRunEnded;
  }

  /** A load from the server failed; the argument is the one-line reason. */
  get failed(): ISignal<this, string> {
    return this._failed;
  }

  get workflows(): readonly Workflow[] {
    return this._workflows;
  }

  get triggers(): readonly Trigger[] {
    return this._triggers;
  }

  get status(): IServerStatus | null {
    return this._status;
  }

  /** Runs pending or running on the server. */
  get activeCount(): number {
    return this._active.size;
  }

  get loaded(): boolean {
    return this._loaded;
  }

  latestRun(workflow: string): IRunRow | undefined {
    return this._latest.get(workflow);
  }

  firings(trigger: string): readonly TriggerFiring[] | undefined {
    return this._firings.get(trigger);
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      this.live.dispose();
      Signal.clearData(this);
    }
  }

  /** Load everything from the REST API; live events that arrive meanwhile are applied afterwards. */
  async refresh(): Promise<void> {
    if (this._refreshing) {
      // The load under way may have read the server before what this refresh was asked for: load again after it.
      this._refreshAgain = true;
      return this._refreshing;
    }
    this._buffer = [];
    this._refreshing = this._load().finally(() => {
      const buffered = this._buffer ?? [];
      this._buffer = null;
      this._refreshing = null;
      buffered.forEach(event => this._onEvent(event));
      if (this._refreshAgain) {
        this._refreshAgain = false;
        void this.refresh();
      }
    });
    return this._refreshing;
  }

  /** Show the runs matching `filters`, newest first. */
  async setFilters(filters: IRunFilters): Promise<void> {
    const runs = await this.api.listRuns({ ...filters, limit: RUNS_PAGE_SIZE });
    this.runs.reset(runs, filters, RUNS_PAGE_SIZE);
  }

  /** Load the next page of older runs. */
  async loadMore(): Promise<void> {
    if (!this.runs.hasMore || this._loadingMore) {
      return;
    }
    this._loadingMore = true;
    try {
      const page = await this.api.listRuns({ ...this.runs.filters, limit: RUNS_PAGE_SIZE, offset: this.runs.rows.length });
      this.runs.append(page, RUNS_PAGE_SIZE);
    } finally {
      this._loadingMore = false;
    }
  }

  async loadFirings(trigger: string): Promise<readonly TriggerFiring[]> {
    const firings = await this.api.triggerFirings(trigger, { limit: FIRINGS_KEPT });
    this._firings.set(trigger, firings);
    this._changed.emit();
    return firings;
  }

  async reloadStatus(): Promise<void> {
    this._status = await this.api.status();
    this._changed.emit();
  }

  /** Start a run of `workflow` from this page (on `executor`, else the server's); `ownRunEnded` tells its end. */
  async startRun(workflow: string, input: Record<string, unknown>, executor = ''): Promise<IRunRow> {
    return this._started(await this.api.run(workflow, input, { wait: false, source: 'manual', executor: executor || undefined }));
  }

  /** Run a run again: its input and the workflow version it ran; the new run records which run it repeats. */
  async rerun(uid: string): Promise<IRunRow> {
    return this._started(await this.api.rerun(uid, { wait: false, source: 'manual' }));
  }

  /** Resume a failed or cancelled run: stages it finished are reused where their output was kept. */
  async resume(uid: string): Promise<IRunRow> {
    return this._started(await this.api.resume(uid, { wait: false, source: 'manual' }));
  }

  private _started(run: WorkflowRun): IRunRow {
    const row = rowOf(run);
    // A short run may have ended, its event handled, before the answer to the POST came back.
    const ended = TERMINAL_STATES.has(row.state) ? row : this._recentlyEnded.get(run.uid);
    if (ended) {
      this._ownRunEnded.emit(ended);
    } else {
      this._own.add(run.uid);
    }
    return row;
  }

  private async _load(): Promise<void> {
    try {
      const [workflows, latest, triggers, status, running, pending] = await Promise.all([
        this.api.list('workflows'),
        this.api.latestRuns(),
        this.api.list('triggers'),
        this.api.status(),
        this.api.listRuns({ state: 'running', limit: 10000 }),
        this.api.listRuns({ state: 'pending', limit: 10000 })
      ]);
      this._workflows = workflows;
      this._latest = new Map(latest.map(run => [run.workflow, rowOf(run)]));
      this._triggers = triggers;
      this._status = status;
      this._active = new Set([...running, ...pending].map(run => run.uid));
      await this.setFilters(this.runs.filters);
      await Promise.all([...this._firings.keys()].map(name => this.loadFirings(name).catch(() => undefined)));
      this._loaded = true;
      this._changed.emit();
    } catch (error) {
      this._failed.emit((error as Error).message);
    }
  }

  private _onEvent(event: ILiveEvent): void {
    if (this._buffer) {
      this._buffer.push(event);
      return;
    }
    if (event.run) {
      this._onRunEvent(event);
    } else if (event.kind === 'trigger') {
      void this._onFiring(event);
    } else if (event.kind === 'resource') {
      void this._onResourceChange(event.resource?.kind);
    }
  }

  private _onRunEvent(event: ILiveEvent): void {
    const run = event.run!;
    const row = this.runs.apply(event)!;
    const latest = this._latest.get(run.workflow);
    if (latest?.uid === run.uid) {
      this._latest.set(run.workflow, applyEvent(latest, event)!);
    } else if (!latest || ACTIVE_STATES.has(run.state)) {
      this._latest.set(run.workflow, row); // a newer run of the workflow
    }
    const countBefore = this._active.size;
    if (ACTIVE_STATES.has(run.state)) {
      this._active.add(run.uid);
    } else {
      this._active.delete(run.uid);
    }
    if (event.kind === 'run' && TERMINAL_STATES.has(run.state)) {
      this._recentlyEnded.set(run.uid, row);
      if (this._recentlyEnded.size > RECENTLY_ENDED_KEPT) {
        this._recentlyEnded.delete(this._recentlyEnded.keys().next().value!);
      }
      if (this._own.delete(run.uid)) {
        this._ownRunEnded.emit(row);
      }
    }
    this._runChanged.emit({ event, row });
    if (event.kind === 'run' && run.state === 'running' && run.executor !== 'local' &&
        !this._status?.dashboards.some(board => board.kind === run.executor)) {
      void this.reloadStatus().catch(() => undefined); // a cluster executor started: its dashboard link
    }
    if (event.kind === 'run' || countBefore !== this._active.size) {
      this._changed.emit();
    }
  }

  private async _onFiring(event: ILiveEvent): Promise<void> {
    const name = event.firing?.trigger;
    if (!name) {
      return;
    }
    // The trigger's next fire time moved on: read it again, and its firings where they are shown.
    const [trigger] = await Promise.all([
      this.api.get('triggers', name).catch(() => undefined),
      this._firings.has(name) ? this.loadFirings(name).catch(() => undefined) : undefined
    ]);
    if (trigger) {
      this._triggers = this._triggers.map(item => (item.metadata.name === name ? trigger : item));
    }
    this._changed.emit();
  }

  private async _onResourceChange(kind: string | undefined): Promise<void> {
    if (kind === 'workflow') {
      this._workflows = await this.api.list('workflows');
    } else if (kind === 'trigger_rule') {
      this._triggers = await this.api.list('triggers');
    } else {
      return;
    }
    this._changed.emit();
  }

  private _workflows: Workflow[] = [];
  private _triggers: Trigger[] = [];
  private _latest = new Map<string, IRunRow>();
  private _firings = new Map<string, TriggerFiring[]>();
  private _status: IServerStatus | null = null;
  private _active = new Set<string>();
  private _own = new Set<string>();
  private _recentlyEnded = new Map<string, IRunRow>();
  private _loaded = false;
  private _disposed = false;
  private _loadingMore = false;
  private _refreshing: Promise<void> | null = null;
  private _refreshAgain = false;
  private _buffer: ILiveEvent[] | null = null;
  private _changed = new Signal<this, void>(this);
  private _runChanged = new Signal<this, { event: ILiveEvent; row: IRunRow }>(this);
  private _ownRunEnded = new Signal<this, IRunRow>(this);
  private _failed = new Signal<this, string>(this);
}
