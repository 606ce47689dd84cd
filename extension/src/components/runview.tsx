/**
 * A run in the main area: its state and timing, the stage timeline, each stage's error with its
 * traceback, per-item failures, output notebooks (opened in Lab), what the stages printed and logged,
 * the result and the input; with Cancel, Run again and Resume. Kept current by live events (log lines are read
 * every second while the run goes on); read again from the server when the run ends, when it ended while the
 * view was loading it, and every few seconds while it goes on (a fallback for an event the page missed).
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { FlowdaptAPIError, LogLine, StageRun, WorkflowRun } from '../api';
import type { ILiveEvent } from '../live';
import { ACTIVE_STATES, TERMINAL_STATES } from '../model/runs';
import type { WorkbenchModel } from '../model/workbench';
import { CommandIDs } from '../tokens';
import { formatDuration, formatTime, ProgressBar, secondsBetween, StateBadge, useTick } from './common';

const RESULT_PREVIEW_CHARS = 20_000;
const LOG_LINES_SHOWN = 5_000;
const LOG_POLL_MS = 1_000;
const RUN_CHECK_POLLS = 5; // an active run is read again every RUN_CHECK_POLLS log polls

export class RunView extends ReactWidget {
  constructor(
    readonly model: WorkbenchModel,
    private readonly commands: CommandRegistry,
    /** The run's uid or name, as asked for. */
    readonly runId: string
  ) {
    super();
    this.addClass('jp-flowdapt-runview');
    this.title.label = runId;
    model.runChanged.connect(this._onRunChanged, this);
    void this.reload();
    this._logTimer = window.setInterval(() => {
      if (this._run && ACTIVE_STATES.has(this._run.state)) {
        this._polls += 1;
        void (this._polls % RUN_CHECK_POLLS === 0 ? this.reload() : this._readLogs());
      }
    }, LOG_POLL_MS);
  }

  /** The run as last read or updated, once loaded. */
  get run(): WorkflowRun | null {
    return this._run;
  }

  async reload(): Promise<void> {
    if (this._loading) {
      return;
    }
    this._loading = true;
    this._endedWhileLoading.clear();
    try {
      const run = await this.model.api.getRun(this.runId);
      if (ACTIVE_STATES.has(run.state) && this._endedWhileLoading.has(run.uid)) {
        this._run = await this.model.api.getRun(run.uid); // its end reached the page before this answer
      } else {
        this._run = run;
      }
      this._error = null;
      this.title.label = `${this._run.workflow} · ${this._run.name}`;
    } catch (error) {
      this._error = error instanceof FlowdaptAPIError ? error.detail : String(error);
    } finally {
      this._loading = false;
    }
    this._changed.emit();
    if (this._run) {
      await this._readLogs();
    }
  }

  dispose(): void {
    window.clearInterval(this._logTimer);
    this.model.runChanged.disconnect(this._onRunChanged, this);
    super.dispose();
  }

  /** Read the log lines recorded since the last one read. */
  private async _readLogs(): Promise<void> {
    if (this._readingLogs || this.isDisposed || !this._run) {
      return;
    }
    this._readingLogs = true;
    try {
      const lines = await this.model.api.runLogs(this._run.uid, { after: this._lastSeq });
      if (lines.length) {
        this._lastSeq = lines[lines.length - 1].seq;
        this._logs = [...this._logs, ...lines].slice(-LOG_LINES_SHOWN);
        this._changed.emit();
      }
    } catch {
      // The log is an extra: a run deleted meanwhile keeps its view, without new lines.
    } finally {
      this._readingLogs = false;
    }
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._changed}>
        {() => <RunPage run={this._run} error={this._error} logs={this._logs} commands={this.commands} />}
      </UseSignal>
    );
  }

  private _onRunChanged(_: unknown, change: { event: ILiveEvent }): void {
    const { event } = change;
    const run = this._run;
    if (this._loading && event.kind === 'run' && event.run && TERMINAL_STATES.has(event.run.state)) {
      this._endedWhileLoading.add(event.run.uid); // the view may be loading that run (asked for by name)
    }
    if (!run || !event.run || event.run.uid !== run.uid) {
      return;
    }
    if (event.kind === 'run' && TERMINAL_STATES.has(event.run.state)) {
      void this.reload(); // result, error and stage records as recorded
      return;
    }
    const stages = event.stage
      ? run.stages.some(stage => stage.name === event.stage!.name)
        ? run.stages.map(stage => (stage.name === event.stage!.name ? event.stage! : stage))
        : [...run.stages, event.stage]
      : run.stages;
    const startedAt = run.started_at ?? (event.run.state === 'running' ? new Date(event.time * 1000).toISOString() : null);
    this._run = { ...run, state: event.run.state, stages, started_at: startedAt };
    this._changed.emit();
  }

  private _run: WorkflowRun | null = null;
  private _error: string | null = null;
  private _logs: LogLine[] = [];
  private _lastSeq = -1;
  private _readingLogs = false;
  private _loading = false;
  private _endedWhileLoading = new Set<string>();
  private _polls = 0;
  private _logTimer: number;
  private _changed = new Signal<this, void>(this);
}

function RunPage(props: { run: WorkflowRun | null; error: string | null; logs: LogLine[]; commands: CommandRegistry }): JSX.Element {
  const { run, error, logs, commands } = props;
  useTick(1000);
  if (error) {
    return <div className="jp-flowdapt-page"><div className="jp-flowdapt-error-box">{error}</div></div>;
  }
  if (!run) {
    return <div className="jp-flowdapt-page">Loading…</div>;
  }
  const active = ACTIVE_STATES.has(run.state);
  const run_ = (command: string, args: Record<string, string>) => () => void commands.execute(command, args);
  return (
    <div className="jp-flowdapt-page" data-run={run.uid} data-state={run.state}>
      <header className="jp-flowdapt-page-header">
        <h2>
          <StateBadge state={run.state} /> <span className="jp-flowdapt-page-title">{run.name}</span>
        </h2>
        <div className="jp-flowdapt-page-actions">
          {active && <button className="jp-mod-styled jp-mod-warn jp-flowdapt-cancel-run" onClick={run_(CommandIDs.cancelRun, { run: run.uid })}>Cancel</button>}
          <button className="jp-mod-styled jp-mod-accept jp-flowdapt-rerun" onClick={run_(CommandIDs.rerun, { run: run.uid })}>Run again</button>
          {(run.state === 'failed' || run.state === 'cancelled') && (
            <button className="jp-mod-styled jp-flowdapt-resume-run" title="Run what failed again, reusing the stages that finished where their output was kept"
              onClick={run_(CommandIDs.resumeRun, { run: run.uid })}>Resume</button>
          )}
          <button className="jp-mod-styled" onClick={run_(CommandIDs.openDag, { workflow: run.workflow, run: run.uid })}>DAG</button>
          <button className="jp-mod-styled" onClick={run_(CommandIDs.openDashboard, { run: run.uid })}>Dashboard</button>
        </div>
      </header>
      <dl className="jp-flowdapt-facts">
        <dt>workflow</dt><dd>{run.workflow}</dd>
        <dt>source</dt><dd>{run.source}</dd>
        <dt>executor</dt><dd>{run.executor}</dd>
        <dt>namespace</dt><dd>{run.namespace}</dd>
        <dt>started</dt><dd>{formatTime(run.started_at)}</dd>
        <dt>{active ? 'running for' : 'took'}</dt><dd>{formatDuration(secondsBetween(run.started_at, run.finished_at))}</dd>
        <dt>uid</dt><dd className="jp-flowdapt-mono">{run.uid}</dd>
        {run.rerun_of && <><dt>runs again</dt><dd className="jp-flowdapt-mono jp-flowdapt-rerun-of">{run.rerun_of}</dd></>}
        {run.resumed_from && <><dt>resumes</dt><dd className="jp-flowdapt-mono jp-flowdapt-resumed-from">{run.resumed_from}</dd></>}
      </dl>
      {run.error && <ErrorBlock error={run.error} title={`${run.error.type}${run.error.stage ? ` in stage '${run.error.stage}'` : ''}`} />}
      <h3>Stages</h3>
      <Timeline run={run} commands={commands} />
      {run.state === 'finished' && (
        <>
          <h3>Result</h3>
          <pre className="jp-flowdapt-result">{preview(run.result)}</pre>
        </>
      )}
      <h3>Logs</h3>
      <Logs lines={logs} />
      <h3>Input</h3>
      <pre className="jp-flowdapt-result">{preview(run.input)}</pre>
    </div>
  );
}

/** What the stages printed and logged: time, stage (and attempt after the first), level or stream, message. */
function Logs(props: { lines: LogLine[] }): JSX.Element {
  const { lines } = props;
  if (!lines.length) {
    return <div className="jp-flowdapt-empty">No stage has printed or logged anything.</div>;
  }
  return (
    <pre className="jp-flowdapt-logs">
      {lines.map(line => (
        <div key={line.seq} className={`jp-flowdapt-log-line jp-flowdapt-log-${line.stream}`} data-stage={line.stage}>
          <span className="jp-flowdapt-log-time">{line.time.slice(11, 23)}</span>{' '}
          <span className="jp-flowdapt-log-stage">{line.stage}{line.attempt > 1 ? `#${line.attempt}` : ''}</span>{' '}
          <span className="jp-flowdapt-log-level">{line.level ?? line.stream}</span>{' '}
          {line.message}
        </div>
      ))}
    </pre>
  );
}

function Timeline(props: { run: WorkflowRun; commands: CommandRegistry }): JSX.Element {
  const { run, commands } = props;
  const [open, setOpen] = React.useState<string | null>(null);
  const starts = run.stages.map(stage => stage.started_at).filter(Boolean).map(value => Date.parse(value!));
  const t0 = run.started_at ? Date.parse(run.started_at) : Math.min(...starts, Date.now());
  const t1 = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  const span = Math.max(1, t1 - t0);
  return (
    <div className="jp-flowdapt-timeline">
      {run.stages.length === 0 && <div className="jp-flowdapt-empty">No stage has started yet.</div>}
      {run.stages.map(stage => {
        const start = stage.started_at ? Date.parse(stage.started_at) : null;
        const end = stage.finished_at ? Date.parse(stage.finished_at) : stage.state === 'running' ? Date.now() : start;
        const left = start === null ? 0 : (100 * (start - t0)) / span;
        const width = start === null || end === null ? 0 : Math.max(0.5, (100 * (end - start)) / span);
        const expanded = open === stage.name;
        return (
          <div key={stage.name} className="jp-flowdapt-stage" data-stage={stage.name} data-state={stage.state}>
            <div className="jp-flowdapt-stage-row" onClick={() => setOpen(expanded ? null : stage.name)}>
              <span className="jp-flowdapt-stage-name">{stage.name}</span>
              <StateBadge state={stage.state} />
              <span className="jp-flowdapt-stage-track">
                <span className={`jp-flowdapt-stage-bar jp-flowdapt-state-${stage.state}`} style={{ left: `${left}%`, width: `${width}%` }} />
              </span>
              <span className="jp-flowdapt-stage-info">
                {typeof stage.items_total === 'number' && (
                  <ProgressBar progress={{ done: stage.items_done, failed: stage.items_failed, total: stage.items_total }} />
                )}
                {formatDuration(secondsBetween(stage.started_at, stage.finished_at))}
                {stage.attempts > 1 && ` · ${stage.attempts} attempts`}
              </span>
              {stage.output_notebook && (
                <a className="jp-flowdapt-link jp-flowdapt-notebook-link" title="Open the output notebook in Lab"
                  onClick={event => { event.stopPropagation(); void commands.execute(CommandIDs.openOutputNotebook, { run: run.uid, stage: stage.name }); }}>
                  output notebook
                </a>
              )}
            </div>
            {(expanded || stage.error || stage.item_failures.length > 0) && <StageDetails stage={stage} expanded={expanded} />}
          </div>
        );
      })}
    </div>
  );
}

function StageDetails(props: { stage: StageRun; expanded: boolean }): JSX.Element {
  const { stage, expanded } = props;
  return (
    <div className="jp-flowdapt-stage-details">
      {stage.error && <ErrorBlock error={stage.error} title={stage.error.type} open={expanded} />}
      {stage.item_failures.length > 0 && (
        <details className="jp-flowdapt-item-failures" open={expanded}>
          <summary>{stage.items_failed} item{stage.items_failed === 1 ? '' : 's'} failed</summary>
          <table>
            <thead><tr><th>item</th><th>error</th></tr></thead>
            <tbody>
              {stage.item_failures.map(failure => (
                <tr key={failure.index} title={failure.traceback}>
                  <td>#{failure.index}</td>
                  <td>{failure.type}: {failure.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
      {expanded && !stage.error && !stage.item_failures.length && (
        <div className="jp-flowdapt-empty">
          {stage.type} stage · started {formatTime(stage.started_at)} · finished {formatTime(stage.finished_at)}
        </div>
      )}
    </div>
  );
}

function ErrorBlock(props: { error: { type: string; message: string; traceback?: string }; title: string; open?: boolean }): JSX.Element {
  const { error, title } = props;
  return (
    <div className="jp-flowdapt-error-box">
      <div className="jp-flowdapt-error-line"><strong>{title}</strong>: {error.message}</div>
      {error.traceback && (
        <details open={props.open}>
          <summary>Traceback</summary>
          <pre className="jp-flowdapt-traceback">{error.traceback}</pre>
        </details>
      )}
    </div>
  );
}

function preview(value: unknown): string {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  return text.length > RESULT_PREVIEW_CHARS ? `${text.slice(0, RESULT_PREVIEW_CHARS)}\n… (${text.length} characters)` : text;
}
