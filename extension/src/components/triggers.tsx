/**
 * The sidebar's triggers: enable/disable, what fires them, the next fire time and the last firings
 * with their outcome (and the run each started).
 */
import { caretDownIcon, caretRightIcon, deleteIcon, ToolbarButtonComponent, yamlIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import * as React from 'react';

import type { Trigger } from '../api';
import type { WorkbenchModel } from '../model/workbench';
import { CommandIDs } from '../tokens';
import { formatTime, relativeTime, useTick } from './common';

export interface ITriggersProps {
  model: WorkbenchModel;
  commands: CommandRegistry;
  expanded: readonly string[];
  onExpanded: (names: string[]) => void;
}

/** What starts a trigger, in a few words. */
export function describeRule(trigger: Trigger): string {
  const spec = trigger.spec;
  if (spec.type === 'schedule') {
    const rules = Array.isArray(spec.rule) ? spec.rule.join(', ') : '';
    return `${rules}${spec.timezone && spec.timezone !== 'UTC' ? ` (${spec.timezone})` : ''}`;
  }
  return 'on matching events';
}

/** What a trigger does when it fires. */
export function describeAction(trigger: Trigger): string {
  const action = trigger.spec.action;
  const parameters = (action.parameters ?? {}) as Record<string, unknown>;
  if (action.target === 'run_workflow') {
    return `run ${parameters.workflow}`;
  }
  if (action.target === 'run_notebook') {
    return `run notebook ${parameters.notebook}`;
  }
  return `call ${action.target}`;
}

export function TriggerList(props: ITriggersProps): JSX.Element {
  const { model } = props;
  useTick(5000);
  return (
    <div className="jp-flowdapt-section jp-flowdapt-triggers">
      <ul className="jp-flowdapt-list">
        {model.triggers.map(trigger => (
          <TriggerItem key={trigger.metadata.name} trigger={trigger} {...props} />
        ))}
        {model.triggers.length === 0 && (
          <li className="jp-flowdapt-empty">No triggers: right-click a notebook and choose "Schedule notebook…".</li>
        )}
      </ul>
    </div>
  );
}

function TriggerItem(props: ITriggersProps & { trigger: Trigger }): JSX.Element {
  const { trigger, model, commands, expanded, onExpanded } = props;
  const name = trigger.metadata.name;
  const open = expanded.includes(name);
  const firings = model.firings(name);
  React.useEffect(() => {
    if (open && firings === undefined) {
      void model.loadFirings(name);
    }
  }, [open]);
  const toggleOpen = () => onExpanded(open ? expanded.filter(item => item !== name) : [...expanded, name]);
  const enabled = trigger.status.enabled;
  const Caret = (open ? caretDownIcon : caretRightIcon).react;
  return (
    <li className="jp-flowdapt-item jp-flowdapt-trigger" data-trigger={name} data-enabled={String(enabled)}>
      <span className="jp-flowdapt-item-name jp-flowdapt-item-main" onClick={toggleOpen} title="Show the last firings">
        <Caret tag="span" className="jp-flowdapt-caret" />
        {name}
      </span>
      <div className="jp-flowdapt-item-actions">
        <label className="jp-flowdapt-switch" title={enabled ? 'Disable' : 'Enable'}>
          <input type="checkbox" checked={enabled} aria-label={`${name} enabled`}
            onChange={() => void commands.execute(CommandIDs.toggleTrigger, { trigger: name, enabled: !enabled })} />
          <span className="jp-flowdapt-switch-track" />
        </label>
        <ToolbarButtonComponent icon={yamlIcon} tooltip="Open as YAML"
          onClick={() => void commands.execute(CommandIDs.openYaml, { collection: 'triggers', name })} />
        <ToolbarButtonComponent icon={deleteIcon} tooltip="Delete…"
          onClick={() => void commands.execute(CommandIDs.deleteTrigger, { trigger: name })} />
      </div>
      <span className="jp-flowdapt-item-meta" title={describeAction(trigger)}>
        {describeRule(trigger)} → {describeAction(trigger)}
      </span>
      <span className="jp-flowdapt-item-meta">
        {enabled
          ? trigger.status.next_fire_time && (
              <span className="jp-flowdapt-next" title={formatTime(trigger.status.next_fire_time)}>
                next {formatTime(trigger.status.next_fire_time)}
              </span>
            )
          : 'disabled'}
        {trigger.status.last_fire_time && <span> · last {relativeTime(trigger.status.last_fire_time)}</span>}
      </span>
      {open && (
        <ul className="jp-flowdapt-firings">
          {firings === undefined && <li className="jp-flowdapt-empty">Loading…</li>}
          {firings?.length === 0 && <li className="jp-flowdapt-empty">Not fired yet.</li>}
          {firings?.map(firing => (
            <li key={firing.id} className="jp-flowdapt-firing" data-ok={String(!firing.error)}>
              <span className={firing.error ? 'jp-flowdapt-bad' : 'jp-flowdapt-good'}>{firing.error ? '✗' : '✓'}</span>
              <span title={formatTime(firing.fired_at)}>{formatTime(firing.fired_at)}</span>
              {firing.run_uid && (
                <a className="jp-flowdapt-link" onClick={() => void commands.execute(CommandIDs.openRun, { run: firing.run_uid! })}>
                  run
                </a>
              )}
              {firing.error && <span className="jp-flowdapt-run-error" title={firing.error}>{firing.error}</span>}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}
