/**
 * The flowdapt JupyterLab extension: a sidebar of workflows, runs and triggers with live state, run
 * and DAG views, notebook scheduling from the file browser, dashboards, a status bar item,
 * notifications when runs started here end, and `{base_url}lab?flowdapt-run=<run>` links.
 *
 * Activation only builds widgets and registers commands; everything is loaded from the server after
 * Lab has restored its layout, so the extension adds little to Lab's start-up.
 */
import {
  ILayoutRestorer,
  IRouter,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { IStateDB } from '@jupyterlab/statedb';
import { IStatusBar } from '@jupyterlab/statusbar';

import { FlowdaptAPI } from './api';
import { addCommands, PALETTE } from './commands';
import type { DagView } from './components/dagview';
import type { RunView } from './components/runview';
import { FlowdaptSidebar } from './components/sidebar';
import { RunningStatus } from './components/status';
import { WorkbenchModel } from './model/workbench';
import { CATEGORY, CommandIDs, PLUGIN_ID, RUN_URL_PARAMETER, SIDEBAR_ID } from './tokens';
import { OutputNotebooksDrive } from './widgets/outputs-drive';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The flowdapt workbench: workflows, runs and triggers with live state.',
  autoStart: true,
  optional: [ILayoutRestorer, IStateDB, ICommandPalette, ILauncher, IStatusBar, IRouter, IDocumentManager, IEditorServices,
             IDefaultFileBrowser],
  activate
};

function activate(
  app: JupyterFrontEnd,
  restorer: ILayoutRestorer | null,
  stateDB: IStateDB | null,
  palette: ICommandPalette | null,
  launcher: ILauncher | null,
  statusBar: IStatusBar | null,
  router: IRouter | null,
  docManager: IDocumentManager | null,
  editorServices: IEditorServices | null,
  fileBrowser: IDefaultFileBrowser | null
): void {
  const started = performance.now();
  const api = new FlowdaptAPI(app.serviceManager.serverSettings);
  const model = new WorkbenchModel(api, app.serviceManager.events);
  const runs = new WidgetTracker<MainAreaWidget<RunView>>({ namespace: 'flowdapt-run' });
  const dags = new WidgetTracker<MainAreaWidget<DagView>>({ namespace: 'flowdapt-dag' });
  app.serviceManager.contents.addDrive(new OutputNotebooksDrive(api));
  addCommands({ app, model, runs, dags, docManager, editorServices, fileBrowser });

  const sidebar = new FlowdaptSidebar({ id: SIDEBAR_ID, model, commands: app.commands, stateDB });
  app.shell.add(sidebar, 'left', { rank: 650 });

  if (restorer) {
    restorer.add(sidebar, SIDEBAR_ID);
    void restorer.restore(runs, {
      command: CommandIDs.openRun,
      args: widget => ({ run: widget.content.run?.uid ?? widget.content.runId }),
      name: widget => widget.content.run?.uid ?? widget.content.runId
    });
    void restorer.restore(dags, {
      command: CommandIDs.openDag,
      args: widget => ({ workflow: widget.content.workflowName, run: widget.content.pinnedRun ?? '' }),
      name: widget => widget.id
    });
  }
  palette && PALETTE.forEach(command => palette.addItem({ command, category: CATEGORY }));
  launcher?.add({ command: CommandIDs.openDashboard, category: 'Other', rank: 10, args: { isLauncher: true } });
  statusBar?.registerStatusItem(`${PLUGIN_ID}:running`, {
    item: new RunningStatus(model, () => app.shell.activateById(SIDEBAR_ID)),
    align: 'left',
    rank: 4,
    isActive: () => true
  });
  // Before Lab's own routes (workspace reset rank 20, state load 30), which may stop routing.
  router?.register({ command: CommandIDs.openRunFromUrl, pattern: new RegExp(`[?&]${RUN_URL_PARAMETER}=`), rank: 10 });

  model.ownRunEnded.connect((_, row) => {
    const failed = row.state !== 'finished';
    const message = `${row.workflow} ${row.state}: ${row.name}${row.error ? ` (${row.error.type}: ${row.error.message})` : ''}`;
    (failed ? Notification.error : Notification.success)(message, {
      autoClose: failed ? false : 5000,
      actions: [{ label: 'Open run', callback: () => void app.commands.execute(CommandIDs.openRun, { run: row.uid }) }]
    });
  });
  model.failed.connect((_, reason) => console.warn(`flowdapt: cannot load from the server: ${reason}`));

  // User timings (the browser's performance panel, bench/lab.py): what activation and the first load cost.
  performance.measure('flowdapt:activate', { start: started });
  void app.restored.then(async () => {
    const loading = performance.now();
    await sidebar.restore();
    performance.measure('flowdapt:first-load', { start: loading });
  });
}

export default plugin;
