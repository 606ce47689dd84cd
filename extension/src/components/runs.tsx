/**
 * The sidebar's runs list: newest first, filtered by workflow, state and source, with live states and
 * item progress; virtualised, and older pages load as the end comes into view.
 */
import { ToolbarButtonComponent, stopIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import * as React from 'react';

import type { RunSource, RunState } from '../api';
import { ACTIVE_STATES, IRunFilters, IRunRow } from '../model/runs';
import type { WorkbenchModel } from '../model/workbench';
import { CommandIDs } from '../tokens';
import { formatDuration, formatTime, ProgressBar, relativeTime, secondsBetween, StateBadge, useTick } from './common';
import { VirtualList } from './virtuallist';

export const RUN_ROW_HEIGHT = 44;
const STATES: RunState[] = ['pending', 'running', 'finished', 'failed', 'cancelled', 'interrupted'];
const SOURCES: RunSource[] = ['manual', 'api', 'trigger', 'notebook'];

export interface IRunsProps {
  model: WorkbenchModel;
  commands: CommandRegistry;
  onFilters: (filters: IRunFilters) => void;
}

export function RunList(props: IRunsProps): JSX.Element {
  const { model, commands } = props;
  const filters = model.runs.filters;
  useTick(5000); // relative times
  const set = (key: keyof IRunFilters) => (event: React.ChangeEvent<HTMLSelectElement>) =>
    props.onFilters({ ...filters, [key]: event.target.value || undefined });
  return (
    <div className="jp-flowdapt-section jp-flowdapt-runs">
      <div className="jp-flowdapt-filters">
        <select aria-label="Workflow" className="jp-mod-styled" value={filters.workflow ?? ''} onChange={set('workflow')}>
          <option value="">all workflows</option>
          {model.workflows.map(workflow => (
            <option key={workflow.metadata.name} value={workflow.metadata.name}>
              {workflow.metadata.name}
            </option>
          ))}
        </select>
        <select aria-label="State" className="jp-mod-styled" value={filters.state ?? ''} onChange={set('state')}>
          <option value="">all states</option>
          {STATES.map(state => (
            <option key={state} value={state}>
              {state}
            </option>
          ))}
        </select>
        <select aria-label="Source" className="jp-mod-styled" value={filters.source ?? ''} onChange={set('source')}>
          <option value="">all sources</option>
          {SOURCES.map(source => (
            <option key={source} value={source}>
              {source}
            </option>
          ))}
        </select>
      </div>
      <VirtualList
        className="jp-flowdapt-run-list"
        items={model.runs.rows}
        rowHeight={RUN_ROW_HEIGHT}
        keyOf={row => row.uid}
        onEndReached={() => void model.loadMore()}
        renderRow={row => <RunRow row={row} commands={commands} />}
        empty={<div className="jp-flowdapt-empty">No runs{filters.workflow || filters.state || filters.source ? ' match' : ' yet'}.</div>}
      />
    </div>
  );
}

const RunRow = React.memo(function RunRow(props: { row: IRunRow; commands: CommandRegistry }): JSX.Element {
  const { row, commands } = props;
  const active = ACTIVE_STATES.has(row.state);
  const open = () => void commands.execute(CommandIDs.openRun, { run: row.uid });
  return (
    <div className="jp-flowdapt-run" data-run={row.uid} data-state={row.state} onClick={open} role="button" tabIndex={0}
      onKeyDown={event => event.key === 'Enter' && open()}
      title={`${row.name}\n${row.workflow} · ${row.source} · ${row.executor}\nstarted ${formatTime(row.started_at)}${row.error ? `\n${row.error.type}: ${row.error.message}` : ''}`}>
      <div className="jp-flowdapt-run-line">
        <StateBadge state={row.state} />
        <span className="jp-flowdapt-run-workflow">{row.workflow}</span>
        <span className="jp-flowdapt-run-when">{relativeTime(row.started_at)}</span>
      </div>
      <div className="jp-flowdapt-run-line jp-flowdapt-run-detail">
        <span className="jp-flowdapt-run-name">{row.name}</span>
        {row.progress && <ProgressBar progress={row.progress} />}
        {!row.progress && row.error && <span className="jp-flowdapt-run-error">{row.error.type}</span>}
        <span className="jp-flowdapt-run-duration">{formatDuration(secondsBetween(row.started_at, row.finished_at))}</span>
        {active && (
          <ToolbarButtonComponent icon={stopIcon} tooltip="Cancel the run" className="jp-flowdapt-cancel"
            onClick={() => void commands.execute(CommandIDs.cancelRun, { run: row.uid })} />
        )}
      </div>
    </div>
  );
});
