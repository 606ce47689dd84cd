/**
 * Every `flowdapt:*` command: open the views, run and cancel, edit resources, the file-browser
 * actions, dashboards. Views are tracked (and restored with the layout) by the plugin.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, InputDialog, MainAreaWidget, Notification, showDialog, WidgetTracker } from '@jupyterlab/apputils';
import type { IEditorServices } from '@jupyterlab/codeeditor';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import type { IDocumentManager } from '@jupyterlab/docmanager';
import type { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { runIcon, stopIcon, treeViewIcon, yamlIcon } from '@jupyterlab/ui-components';

import { Collection, describeError, IApplied } from './api';
import type { DagView } from './components/dagview';
import type { ISchedule } from './components/forms';
import type { RunView } from './components/runview';
import { flowdaptIcon } from './icons';
import type { IRunRow } from './model/runs';
import type { WorkbenchModel } from './model/workbench';
import { CommandIDs, DASHBOARD_PATH, RUN_URL_PARAMETER, SIDEBAR_ID } from './tokens';
import { frameWidget } from './widgets/frame';
import { outputNotebookPath } from './widgets/outputs-drive';

// Views and dialogs are loaded when first used (with dagre for the DAG), not with Lab.
const views = {
  run: () => import('./components/runview'),
  dag: () => import('./components/dagview'),
  forms: () => import('./components/forms'),
  yaml: () => import('./widgets/resource-editor')
};

export interface ICommandContext {
  app: JupyterFrontEnd;
  model: WorkbenchModel;
  runs: WidgetTracker<MainAreaWidget<RunView>>;
  dags: WidgetTracker<MainAreaWidget<DagView>>;
  docManager: IDocumentManager | null;
  editorServices: IEditorServices | null;
  fileBrowser: IDefaultFileBrowser | null;
}

// dask-labextension's commands and sidebar.
const DASK_POPULATE = 'dask:populate-dashboard-url';
const DASK_LAYOUT = 'dask:launch-layout';
const DASK_SIDEBAR = 'dask-dashboard-launcher';

/** The commands shown in the palette. */
export const PALETTE: string[] = [
  CommandIDs.openSidebar, CommandIDs.refresh, CommandIDs.runWorkflow, CommandIDs.openRun, CommandIDs.openDag,
  CommandIDs.openDashboard, CommandIDs.openExecutorDashboard
];

export function addCommands(context: ICommandContext): void {
  const { app, model, runs, dags, docManager, editorServices, fileBrowser } = context;
  const { commands, shell } = app;
  const api = model.api;
  const fail = (error: unknown, prefix = '') => Notification.error(`${prefix}${describeError(error)}`, { autoClose: false });
  const text = (args: Record<string, unknown>, key: string) => (typeof args[key] === 'string' ? (args[key] as string) : '');
  const ask = async (title: string, placeholder = '') => (await InputDialog.getText({ title, placeholder })).value ?? '';

  commands.addCommand(CommandIDs.openSidebar, {
    label: 'Show the flowdapt sidebar',
    caption: 'Workflows, runs and triggers',
    icon: flowdaptIcon,
    execute: () => shell.activateById(SIDEBAR_ID)
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Reload flowdapt from the server',
    execute: () => model.refresh()
  });

  commands.addCommand(CommandIDs.openRun, {
    label: args => (args.run ? `Open run ${args.run}` : 'Open a run…'),
    caption: 'A run with its stage timeline, errors, result and output notebooks',
    execute: async args => {
      const run = text(args, 'run') || (await ask('Open run', 'run name or uid'));
      if (!run) {
        return;
      }
      const open = runs.find(widget => widget.content.runId === run || widget.content.run?.uid === run);
      if (open) {
        shell.activateById(open.id);
        return open;
      }
      const { RunView } = await views.run();
      const content = new RunView(model, commands, run);
      const widget = new MainAreaWidget({ content });
      widget.id = `flowdapt-run-${run}`;
      widget.title.icon = runIcon;
      widget.title.closable = true;
      await runs.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      return widget;
    }
  });

  commands.addCommand(CommandIDs.openRunFromUrl, {
    label: 'Open the run named in the URL',
    execute: async args => {
      const search = text(args, 'search') || window.location.search;
      const run = new URLSearchParams(search).get(RUN_URL_PARAMETER);
      if (!run) {
        return;
      }
      // Once opened (and restored with the layout), the parameter is dropped so a reload does not reopen it.
      const url = new URL(window.location.href);
      url.searchParams.delete(RUN_URL_PARAMETER);
      window.history.replaceState(window.history.state, '', url.toString());
      // Routing is part of Lab's start-up: open the view once the layout is restored, without waiting here.
      void app.restored.then(() => commands.execute(CommandIDs.openRun, { run }));
    }
  });

  commands.addCommand(CommandIDs.openDag, {
    label: args => (args.workflow ? `Open the DAG of ${args.workflow}` : 'Open a workflow DAG…'),
    icon: treeViewIcon,
    execute: async args => {
      const workflow = text(args, 'workflow') || (await ask('Open the DAG of', 'workflow name'));
      if (!workflow) {
        return;
      }
      const run = text(args, 'run') || null;
      const id = `flowdapt-dag-${workflow}${run ? `-${run}` : ''}`;
      const open = dags.find(widget => widget.id === id);
      if (open) {
        shell.activateById(id);
        return open;
      }
      const { DagView } = await views.dag();
      const widget = new MainAreaWidget({ content: new DagView(model, commands, workflow, run) });
      widget.id = id;
      widget.title.icon = treeViewIcon;
      widget.title.closable = true;
      await dags.add(widget);
      shell.add(widget, 'main');
      shell.activateById(id);
      return widget;
    }
  });

  commands.addCommand(CommandIDs.runWorkflow, {
    label: args => (args.workflow ? `Run ${args.workflow}…` : 'Run a workflow…'),
    caption: 'Run with an input form made from the root stages\' parameters',
    icon: runIcon,
    execute: async args => {
      const workflow = text(args, 'workflow') || (await ask('Run workflow', 'workflow name'));
      if (!workflow) {
        return;
      }
      try {
        const [inputs, { askRunInput }] = await Promise.all([api.workflowInputs(workflow), views.forms()]);
        const request = await askRunInput(`Run ${workflow}`, inputs, model.status?.executor);
        if (request) {
          return announce(await model.startRun(workflow, request.input, request.executor));
        }
      } catch (error) {
        fail(error, `${workflow}: `);
      }
    }
  });

  /** Start a new run from the run named in `args` and open its view. */
  const startFromRun = (start: (uid: string) => Promise<IRunRow>) => async (args: Record<string, unknown>) => {
    try {
      const row = announce(await start(text(args, 'run')));
      return commands.execute(CommandIDs.openRun, { run: row.uid });
    } catch (error) {
      fail(error);
    }
  };

  commands.addCommand(CommandIDs.rerun, {
    label: 'Run again with the same input',
    icon: runIcon,
    execute: startFromRun(uid => model.rerun(uid))
  });

  commands.addCommand(CommandIDs.resumeRun, {
    label: 'Resume the run (reuse the stages it finished)',
    icon: runIcon,
    execute: startFromRun(uid => model.resume(uid))
  });

  commands.addCommand(CommandIDs.cancelRun, {
    label: 'Cancel the run',
    icon: stopIcon,
    execute: async args => {
      try {
        await api.cancelRun(text(args, 'run'));
      } catch (error) {
        fail(error);
      }
    }
  });

  commands.addCommand(CommandIDs.openYaml, {
    label: 'Open as YAML',
    icon: yamlIcon,
    isEnabled: () => editorServices !== null,
    execute: async args => {
      const collection = (text(args, 'collection') || 'workflows') as Collection;
      const name = text(args, 'name');
      const id = `flowdapt-yaml-${collection}-${name}`;
      const open = Array.from(shell.widgets('main')).find(widget => widget.id === id);
      if (open) {
        shell.activateById(id);
        return;
      }
      const { ResourceEditor } = await views.yaml();
      const editor = new ResourceEditor({
        api, editorServices: editorServices!, contents: app.serviceManager.contents, collection, name,
        folder: () => fileBrowser?.model.path ?? ''
      });
      shell.add(editor, 'main');
      shell.activateById(editor.id);
    }
  });

  const confirmDelete = async (what: string) =>
    (await showDialog({ title: `Delete ${what}?`, buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })] })).button.accept;

  commands.addCommand(CommandIDs.deleteWorkflow, {
    label: 'Delete the workflow…',
    execute: async args => {
      const workflow = text(args, 'workflow');
      if (await confirmDelete(`workflow ${workflow}`)) {
        await api.delete('workflows', workflow).catch(fail);
      }
    }
  });

  commands.addCommand(CommandIDs.deleteTrigger, {
    label: 'Delete the trigger…',
    execute: async args => {
      const trigger = text(args, 'trigger');
      if (await confirmDelete(`trigger ${trigger}`)) {
        await api.delete('triggers', trigger).catch(fail);
      }
    }
  });

  commands.addCommand(CommandIDs.toggleTrigger, {
    label: args => (args.enabled === false ? 'Disable the trigger' : 'Enable the trigger'),
    execute: async args => {
      const trigger = text(args, 'trigger');
      const current = model.triggers.find(item => item.metadata.name === trigger);
      const enabled = typeof args.enabled === 'boolean' ? args.enabled : !current?.status.enabled;
      await api.setTriggerEnabled(trigger, enabled).catch(fail);
    }
  });

  // -- file browser --------------------------------------------------------------------------
  const selected = (args: Record<string, unknown>, extensions: string[]): string | null => {
    const path = text(args, 'path') || fileBrowser?.selectedItems().next()?.value?.path || '';
    return extensions.includes(PathExt.extname(path).toLowerCase()) ? path : null;
  };
  const isYaml = (args: Record<string, unknown>) => selected(args, ['.yaml', '.yml']) !== null;
  const isNotebook = (args: Record<string, unknown>) => selected(args, ['.ipynb']) !== null;

  commands.addCommand(CommandIDs.applyFile, {
    label: 'Apply to flowdapt',
    caption: 'Create or update the workflows, configs and triggers of this file (all or nothing)',
    icon: flowdaptIcon,
    isVisible: isYaml,
    execute: async args => {
      const path = selected(args, ['.yaml', '.yml']);
      if (!path) {
        return;
      }
      try {
        const file = await app.serviceManager.contents.get(path, { type: 'file', format: 'text', content: true });
        const applied = await api.applyYaml(file.content as string);
        Notification.success(`${PathExt.basename(path)}: ${summarise(applied)}`, { autoClose: 5000 });
        return applied;
      } catch (error) {
        fail(error, `${PathExt.basename(path)}: `);
      }
    }
  });

  commands.addCommand(CommandIDs.runNotebook, {
    label: 'Run as a notebook stage…',
    caption: 'Run this notebook with papermill as a recorded one-stage workflow',
    icon: runIcon,
    isVisible: isNotebook,
    execute: async args => {
      const path = selected(args, ['.ipynb']);
      if (!path) {
        return;
      }
      try {
        const [{ workflow, inputs }, { askRunInput }] = await Promise.all([api.notebookWorkflow(path), views.forms()]);
        const request = await askRunInput(`Run ${PathExt.basename(path)}`, inputs, model.status?.executor);
        if (request) {
          return announce(await model.startRun(workflow.metadata.name, request.input, request.executor));
        }
      } catch (error) {
        fail(error, `${PathExt.basename(path)}: `);
      }
    }
  });

  commands.addCommand(CommandIDs.scheduleNotebook, {
    label: 'Schedule notebook…',
    caption: 'Run this notebook on a cron schedule (a run_notebook trigger)',
    icon: flowdaptIcon,
    isVisible: isNotebook,
    execute: async args => {
      const path = selected(args, ['.ipynb']);
      if (!path) {
        return;
      }
      try {
        const [{ workflow, inputs }, { askSchedule }] = await Promise.all([api.notebookWorkflow(path), views.forms()]);
        const name = `schedule-${workflow.metadata.name.replace(/^notebook-/, '')}`;
        const schedule = await askSchedule(path, name, inputs, async choice => {
          try {
            await api.apply([scheduleTrigger(path, choice)]);
            return null;
          } catch (error) {
            return describeError(error);
          }
        });
        if (schedule) {
          Notification.success(`Scheduled ${path} as trigger ${schedule.name} (${schedule.cron}, ${schedule.timezone})`, { autoClose: 5000 });
          shell.activateById(SIDEBAR_ID);
        }
        return schedule;
      } catch (error) {
        fail(error, `${PathExt.basename(path)}: `);
      }
    }
  });

  commands.addCommand(CommandIDs.openOutputNotebook, {
    label: 'Open the output notebook',
    isEnabled: () => docManager !== null,
    execute: args => docManager?.openOrReveal(outputNotebookPath(text(args, 'run'), text(args, 'stage')))
  });

  // -- dashboards ----------------------------------------------------------------------------
  const baseUrl = app.serviceManager.serverSettings.baseUrl;

  commands.addCommand(CommandIDs.openDashboard, {
    label: args => (args.isLauncher ? 'flowdapt dashboard' : args.run ? 'Open the run in the flowdapt dashboard' : 'Open the flowdapt dashboard'),
    caption: 'Run history: states over time, durations, trigger firings, errors',
    icon: flowdaptIcon,
    execute: args => {
      const run = text(args, 'run');
      const url = URLExt.join(baseUrl, DASHBOARD_PATH) + (run ? `?run=${encodeURIComponent(run)}` : '');
      const open = Array.from(shell.widgets('main')).find(widget => widget.id === 'flowdapt-dashboard') as MainAreaWidget<any> | undefined;
      if (open) {
        open.content.url = url;
        shell.activateById(open.id);
        return open;
      }
      const widget = frameWidget('flowdapt-dashboard', url, 'flowdapt dashboard', flowdaptIcon);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      return widget;
    }
  });

  commands.addCommand(CommandIDs.openExecutorDashboard, {
    label: args => `Open the ${args.kind ?? 'cluster'} dashboard`,
    caption: 'The dashboard of the Dask or Ray cluster the server runs, through the server',
    isEnabled: args => !!dashboardOf(text(args, 'kind')),
    execute: async args => {
      const board = dashboardOf(text(args, 'kind'));
      if (!board) {
        return;
      }
      const url = board.proxied ? new URL(URLExt.join(baseUrl, board.url), window.location.href).href : board.url;
      if (board.kind === 'dask' && commands.hasCommand(DASK_POPULATE)) {
        // dask-labextension: its dashboard URL box and plot list on this cluster, then its default layout
        // once it has checked the URL (it enables the layout command when the plots are known).
        await commands.execute(DASK_POPULATE, { url });
        shell.activateById(DASK_SIDEBAR);
        for (let waited = 0; waited < 15_000 && !commands.isEnabled(DASK_LAYOUT); waited += 100) {
          await new Promise(resolve => setTimeout(resolve, 100));
        }
        return commands.isEnabled(DASK_LAYOUT) ? commands.execute(DASK_LAYOUT) : undefined;
      }
      const widget = frameWidget(`flowdapt-${board.kind}-dashboard`, url, `${board.kind} dashboard`);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      return widget;
    }
  });

  function dashboardOf(kind: string) {
    const boards = model.status?.dashboards ?? [];
    return boards.find(board => board.kind === kind) ?? (kind ? undefined : boards[0]);
  }

  function announce(row: IRunRow): IRunRow {
    Notification.info(`Started ${row.workflow}: ${row.name}`, {
      autoClose: 3000,
      actions: [{ label: 'Open', callback: () => void commands.execute(CommandIDs.openRun, { run: row.uid }) }]
    });
    return row;
  }
}

/** What a file's apply did, in a line. */
export function summarise(applied: IApplied[]): string {
  return applied.map(item => `${item.resource.kind} ${item.resource.metadata.name} ${item.outcome}`).join(', ');
}

/** The `run_notebook` trigger rule of a schedule. */
export function scheduleTrigger(notebook: string, schedule: ISchedule): object {
  return {
    kind: 'trigger_rule',
    metadata: { name: schedule.name, annotations: { notebook } },
    spec: {
      type: 'schedule', rule: [schedule.cron], timezone: schedule.timezone, enabled: schedule.enabled,
      action: { target: 'run_notebook', parameters: { notebook, parameters: schedule.parameters } }
    }
  };
}
