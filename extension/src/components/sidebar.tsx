/**
 * The flowdapt sidebar (left panel): a header with the connection, the running count and dashboard
 * links, then collapsible sections for workflows, runs and triggers. What the user set (search,
 * filters, open triggers) is kept across reloads through the state database.
 */
import type { IStateDB } from '@jupyterlab/statedb';
import { ReactWidget, refreshIcon, SidePanel, ToolbarButton, UseSignal } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import type { IRunFilters } from '../model/runs';
import type { WorkbenchModel } from '../model/workbench';
import { CommandIDs } from '../tokens';
import { flowdaptIcon } from '../icons';
import { RunList } from './runs';
import { TriggerList } from './triggers';
import { WorkflowList } from './workflows';

const STATE_KEY = 'flowdapt:sidebar';

export interface ISidebarState {
  search: string;
  filters: IRunFilters;
  expandedTriggers: string[];
}

export class FlowdaptSidebar extends SidePanel {
  constructor(options: FlowdaptSidebar.IOptions) {
    super();
    const { model, commands } = options;
    this.model = model;
    this._stateDB = options.stateDB ?? null;
    this.id = options.id;
    this.addClass('jp-flowdapt-sidebar');
    this.title.icon = flowdaptIcon;
    this.title.caption = 'flowdapt: workflows, runs, triggers';
    const status = ReactWidget.create(
      <UseSignal signal={model.changed}>{() => <SidebarStatus model={model} />}</UseSignal>
    );
    status.addClass('jp-flowdapt-header-widget');
    this.toolbar.addItem('status', status);
    const links = ReactWidget.create(
      <UseSignal signal={model.changed}>{() => <DashboardLinks model={model} commands={commands} />}</UseSignal>
    );
    links.addClass('jp-flowdapt-links-widget');
    this.header.addWidget(links);
    this.toolbar.addItem('refresh', new ToolbarButton({
      icon: refreshIcon, tooltip: 'Reload from the server', onClick: () => void commands.execute(CommandIDs.refresh)
    }));
    const section = (label: string, render: () => JSX.Element, signal: ISignal<any, void> = this._stateChanged) => {
      const widget = ReactWidget.create(<UseSignal signal={signal}>{render}</UseSignal>);
      widget.title.label = label;
      widget.addClass('jp-flowdapt-sidebar-section');
      this.addWidget(widget);
      return widget;
    };
    section('Workflows', () => <WorkflowList model={model} commands={commands} search={this._state.search}
      onSearch={search => this._update({ search })} />, this._stateChanged);
    const runs = section('Runs', () => <RunList model={model} commands={commands}
      onFilters={filters => this._setFilters(filters)} />, model.runs.changed);
    runs.node.dataset.section = 'runs';
    model.changed.connect(() => runs.update()); // its workflow filter lists the workflows
    section('Triggers', () => <TriggerList model={model} commands={commands} expanded={this._state.expandedTriggers}
      onExpanded={expandedTriggers => this._update({ expandedTriggers })} />, this._stateChanged);
    model.changed.connect(() => this._stateChanged.emit());
  }

  readonly model: WorkbenchModel;

  /** Restore what the user had set, then load from the server. */
  async restore(): Promise<void> {
    const saved = this._stateDB ? ((await this._stateDB.fetch(STATE_KEY)) as unknown as Partial<ISidebarState> | undefined) : undefined;
    this._state = { ...this._state, ...(saved ?? {}) };
    this.model.runs.reset([], this._state.filters, 1);
    await this.model.refresh();
    this._stateChanged.emit();
  }

  private async _setFilters(filters: IRunFilters): Promise<void> {
    this._update({ filters });
    await this.model.setFilters(filters);
  }

  private _update(change: Partial<ISidebarState>): void {
    this._state = { ...this._state, ...change };
    this._stateChanged.emit();
    void this._stateDB?.save(STATE_KEY, this._state as unknown as ReadonlyPartialJSONObject);
  }

  private _state: ISidebarState = { search: '', filters: {}, expandedTriggers: [] };
  private _stateDB: IStateDB | null;
  private _stateChanged = new Signal<this, void>(this);
}

export namespace FlowdaptSidebar {
  export interface IOptions {
    id: string;
    model: WorkbenchModel;
    commands: CommandRegistry;
    stateDB?: IStateDB | null;
  }
}

function SidebarStatus(props: { model: WorkbenchModel }): JSX.Element {
  const { model } = props;
  const connected = model.live.connected;
  return (
    <div className="jp-flowdapt-header">
      <span className={`jp-flowdapt-live jp-flowdapt-live-${connected ? 'on' : 'off'}`}
        title={connected ? 'Live: states are pushed by the server' : 'Reconnecting: states will be reloaded'}>
        {connected ? 'live' : 'reconnecting…'}
      </span>
      <span className="jp-flowdapt-running" data-running={model.activeCount}>
        {model.activeCount} running
      </span>
    </div>
  );
}

function DashboardLinks(props: { model: WorkbenchModel; commands: CommandRegistry }): JSX.Element {
  const { model, commands } = props;
  const boards = model.status?.dashboards ?? [];
  return (
    <div className="jp-flowdapt-header-links">
      <a className="jp-flowdapt-link" data-dashboard="flowdapt" onClick={() => void commands.execute(CommandIDs.openDashboard)}>
        run history dashboard
      </a>
      {boards.map(board => (
        <a key={board.kind} className="jp-flowdapt-link" data-dashboard={board.kind}
          title={board.proxied ? `${board.target}, through the server` : board.target}
          onClick={() => void commands.execute(CommandIDs.openExecutorDashboard, { kind: board.kind })}>
          {board.kind} dashboard
        </a>
      ))}
    </div>
  );
}
