/**
 * A workflow's stage graph in the main area (laid out by dagre), each stage coloured by its state in
 * one run: the run asked for, else the workflow's latest, following new runs as they start.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { FlowdaptAPIError, StageRun, Workflow } from '../api';
import type { ILiveEvent } from '../live';
import { IDagLayout, layoutWorkflow } from '../model/dag';
import type { IRunRow } from '../model/runs';
import { rowOf } from '../model/runs';
import type { WorkbenchModel } from '../model/workbench';
import { CommandIDs } from '../tokens';
import { StateBadge } from './common';

/** How much larger than dagre's pixels the graph may be drawn when there is room. */
const DAG_SCALE = 1.5;

export class DagView extends ReactWidget {
  constructor(
    readonly model: WorkbenchModel,
    private readonly commands: CommandRegistry,
    readonly workflowName: string,
    /** A run to show; without one the view follows the workflow's latest run. */
    readonly pinnedRun: string | null = null
  ) {
    super();
    this.addClass('jp-flowdapt-dagview');
    this.title.label = `${workflowName} DAG`;
    model.runChanged.connect(this._onRunChanged, this);
    void this._load();
  }

  dispose(): void {
    this.model.runChanged.disconnect(this._onRunChanged, this);
    super.dispose();
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._changed}>
        {() => <DagPage workflow={this._workflow} layout={this._dag} run={this._run} error={this._error}
          commands={this.commands} following={!this.pinnedRun} />}
      </UseSignal>
    );
  }

  private async _load(): Promise<void> {
    try {
      this._workflow = await this.model.api.get('workflows', this.workflowName);
      this._dag = await layoutWorkflow(this._workflow);
      const id = this.pinnedRun ?? this.model.latestRun(this.workflowName)?.uid;
      if (id) {
        this._run = rowOf(await this.model.api.getRun(id));
      }
    } catch (error) {
      this._error = error instanceof FlowdaptAPIError ? error.detail : String(error);
    }
    this._changed.emit();
  }

  private _onRunChanged(_: unknown, change: { event: ILiveEvent; row: IRunRow }): void {
    const { event, row } = change;
    if (!event.run || event.run.workflow !== this.workflowName) {
      return;
    }
    const current = this._run;
    if (current && current.uid === event.run.uid) {
      const stages = event.stage ? { ...current.stages, [event.stage.name]: event.stage } : current.stages;
      this._run = { ...current, state: event.run.state, stages };
    } else if (!this.pinnedRun && event.kind === 'run' && event.run.state === 'running') {
      this._run = { ...row, stages: {} }; // a new run of the workflow: follow it
    } else {
      return;
    }
    this._changed.emit();
  }

  private _workflow: Workflow | null = null;
  private _dag: IDagLayout | null = null;
  private _run: IRunRow | null = null;
  private _error: string | null = null;
  private _changed = new Signal<this, void>(this);
}

interface IDagPageProps {
  workflow: Workflow | null;
  layout: IDagLayout | null;
  run: IRunRow | null;
  error: string | null;
  commands: CommandRegistry;
  following: boolean;
}

function DagPage(props: IDagPageProps): JSX.Element {
  const { workflow, layout, run, error, commands } = props;
  if (error) {
    return <div className="jp-flowdapt-page"><div className="jp-flowdapt-error-box">{error}</div></div>;
  }
  if (!workflow || !layout) {
    return <div className="jp-flowdapt-page">Loading…</div>;
  }
  const name = workflow.metadata.name;
  const stateOf = (stage: string): string => (run ? stageOf(run, stage)?.state ?? 'pending' : 'none');
  return (
    <div className="jp-flowdapt-page jp-flowdapt-dag" data-workflow={name} data-run={run?.uid ?? ''}>
      <header className="jp-flowdapt-page-header">
        <h2>{name}</h2>
        <div className="jp-flowdapt-page-actions">
          {run && (
            <a className="jp-flowdapt-link" onClick={() => void commands.execute(CommandIDs.openRun, { run: run.uid })}>
              <StateBadge state={run.state} /> {run.name}
            </a>
          )}
          <span className="jp-flowdapt-muted">{props.following ? 'follows the latest run' : ''}</span>
          <button className="jp-mod-styled jp-mod-accept" onClick={() => void commands.execute(CommandIDs.runWorkflow, { workflow: name })}>Run…</button>
        </div>
      </header>
      <svg className="jp-flowdapt-dag-svg" viewBox={`0 0 ${layout.width} ${layout.height}`}
        style={{ width: `min(100%, ${Math.round(layout.width * DAG_SCALE)}px)` }}>
        <defs>
          <marker id="jp-flowdapt-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" className="jp-flowdapt-dag-arrow" />
          </marker>
        </defs>
        {layout.edges.map(edge => (
          <polyline key={`${edge.from}>${edge.to}`} className="jp-flowdapt-dag-edge" markerEnd="url(#jp-flowdapt-arrow)"
            points={edge.points.map(point => `${point.x},${point.y}`).join(' ')} />
        ))}
        {layout.nodes.map(node => {
          const stage = run ? stageOf(run, node.name) : undefined;
          const state = stateOf(node.name);
          const total = stage?.items_total;
          return (
            <g key={node.name} className={`jp-flowdapt-dag-node jp-flowdapt-dag-${state}`} data-stage={node.name} data-state={state}
              transform={`translate(${node.x},${node.y})`}>
              <title>{`${node.name} (${node.type}): ${state}${stage?.error ? `\n${stage.error.type}: ${stage.error.message}` : ''}`}</title>
              <rect width={node.width} height={node.height} rx={6} />
              <text x={node.width / 2} y={node.type === 'simple' ? node.height / 2 + 4 : 18} textAnchor="middle">{node.name}</text>
              {node.type !== 'simple' && (
                <text className="jp-flowdapt-dag-sub" x={node.width / 2} y={34} textAnchor="middle">
                  {typeof total === 'number' ? `${stage!.items_done}/${total} items` : node.type}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <div className="jp-flowdapt-legend">
        {['pending', 'running', 'finished', 'failed', 'cancelled', 'skipped'].map(state => <StateBadge key={state} state={state} />)}
      </div>
    </div>
  );
}

function stageOf(run: IRunRow, name: string): StageRun | undefined {
  return run.stages[name];
}
