/**
 * The sidebar's workflow list: search, the latest run of each, Run (with the input form), the DAG,
 * the resource as YAML, delete.
 */
import { deleteIcon, runIcon, ToolbarButtonComponent, treeViewIcon, yamlIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import * as React from 'react';

import type { Workflow } from '../api';
import type { WorkbenchModel } from '../model/workbench';
import { CommandIDs } from '../tokens';
import { relativeTime, StateBadge, useTick } from './common';

export interface IWorkflowsProps {
  model: WorkbenchModel;
  commands: CommandRegistry;
  search: string;
  onSearch: (text: string) => void;
}

export function matchesSearch(workflow: Workflow, search: string): boolean {
  const text = search.trim().toLowerCase();
  if (!text) {
    return true;
  }
  const stages = workflow.spec.stages.map(stage => `${stage.name} ${stage.target}`).join(' ');
  return `${workflow.metadata.name} ${stages}`.toLowerCase().includes(text);
}

export function WorkflowList(props: IWorkflowsProps): JSX.Element {
  const { model, commands, search } = props;
  useTick(5000); // relative times
  const shown = model.workflows.filter(workflow => matchesSearch(workflow, search));
  return (
    <div className="jp-flowdapt-section jp-flowdapt-workflows">
      <input
        className="jp-flowdapt-search jp-mod-styled"
        type="search"
        placeholder="Search workflows and stages"
        aria-label="Search workflows"
        value={search}
        onChange={event => props.onSearch(event.target.value)}
      />
      <ul className="jp-flowdapt-list">
        {shown.map(workflow => (
          <WorkflowItem key={workflow.metadata.name} workflow={workflow} model={model} commands={commands} />
        ))}
        {shown.length === 0 && (
          <li className="jp-flowdapt-empty">
            {model.workflows.length ? 'No workflow matches.' : 'No workflows yet: right-click a .yaml file and choose "Apply to flowdapt".'}
          </li>
        )}
      </ul>
    </div>
  );
}

function WorkflowItem(props: { workflow: Workflow; model: WorkbenchModel; commands: CommandRegistry }): JSX.Element {
  const { workflow, model, commands } = props;
  const name = workflow.metadata.name;
  const latest = model.latestRun(name);
  const stages = workflow.spec.stages.length;
  return (
    <li className="jp-flowdapt-item" data-workflow={name} title={workflow.spec.stages.map(stage => stage.name).join(' → ')}>
      <span className="jp-flowdapt-item-name" onDoubleClick={() => void commands.execute(CommandIDs.openDag, { workflow: name })}>
        {name}
      </span>
      <div className="jp-flowdapt-item-actions">
        <ToolbarButtonComponent icon={runIcon} tooltip={`Run ${name}…`} className="jp-flowdapt-run-workflow"
          onClick={() => void commands.execute(CommandIDs.runWorkflow, { workflow: name })} />
        <ToolbarButtonComponent icon={treeViewIcon} tooltip="Open the DAG"
          onClick={() => void commands.execute(CommandIDs.openDag, { workflow: name })} />
        <ToolbarButtonComponent icon={yamlIcon} tooltip="Open as YAML"
          onClick={() => void commands.execute(CommandIDs.openYaml, { collection: 'workflows', name })} />
        <ToolbarButtonComponent icon={deleteIcon} tooltip="Delete…"
          onClick={() => void commands.execute(CommandIDs.deleteWorkflow, { workflow: name })} />
      </div>
      <span className="jp-flowdapt-item-meta">
        {stages} stage{stages === 1 ? '' : 's'}
        {latest && (
          <>
            {' · '}
            <a className="jp-flowdapt-link" title={`latest run ${latest.name}`}
              onClick={() => void commands.execute(CommandIDs.openRun, { run: latest.uid })}>
              <StateBadge state={latest.state} /> {relativeTime(latest.started_at)}
            </a>
          </>
        )}
      </span>
    </li>
  );
}
