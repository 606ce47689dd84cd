/**
 * A resource as YAML in an editor (main area), as the server writes it (`Accept: application/yaml`):
 * edit it and Apply (the server validates it; a rejected document is reported in one line and
 * nothing changes), or save it as a file in the current folder of the file browser.
 */
import { MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { CodeEditor, CodeEditorWrapper, IEditorServices } from '@jupyterlab/codeeditor';
import { PathExt } from '@jupyterlab/coreutils';
import type { Contents } from '@jupyterlab/services';
import { runIcon, saveIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { Collection, describeError, FlowdaptAPI } from '../api';

export class ResourceEditor extends MainAreaWidget<CodeEditorWrapper> {
  constructor(options: ResourceEditor.IOptions) {
    const model = new CodeEditor.Model({ mimeType: 'text/x-yaml' });
    const content = new CodeEditorWrapper({
      factory: options.editorServices.factoryService.newDocumentEditor,
      model,
      editorOptions: { config: { lineNumbers: true } }
    });
    super({ content });
    this.collection = options.collection;
    this.name = options.name;
    this._api = options.api;
    this.id = `flowdapt-yaml-${options.collection}-${options.name}`;
    this.title.label = `${options.name}.yaml`;
    this.title.closable = true;
    this.addClass('jp-flowdapt-yaml');
    this.toolbar.addItem('apply', new ToolbarButton({
      icon: runIcon, label: 'Apply', tooltip: 'Apply this YAML to flowdapt', onClick: () => void this.apply()
    }));
    this.toolbar.addItem('save', new ToolbarButton({
      icon: saveIcon, label: 'Save as file', tooltip: 'Save as a .yaml file in the file browser\'s folder',
      onClick: () => void this.saveAs(options.folder(), options.contents)
    }));
    void this.load();
  }

  readonly collection: Collection;
  readonly name: string;

  get text(): string {
    return this.content.model.sharedModel.getSource();
  }

  async load(): Promise<void> {
    try {
      this.content.model.sharedModel.setSource(await this._api.getYaml(this.collection, this.name));
    } catch (error) {
      Notification.error(describeError(error));
    }
  }

  async apply(): Promise<void> {
    try {
      const applied = await this._api.applyYaml(this.text);
      Notification.success(applied.map(item => `${item.resource.kind} ${item.resource.metadata.name}: ${item.outcome}`).join('; '),
        { autoClose: 4000 });
    } catch (error) {
      Notification.error(describeError(error), { autoClose: false });
    }
  }

  async saveAs(folder: string, contents: Contents.IManager): Promise<string> {
    const path = PathExt.join(folder, `${this.name}.yaml`);
    await contents.save(path, { type: 'file', format: 'text', content: this.text });
    Notification.success(`Saved ${path}`, { autoClose: 3000 });
    return path;
  }

  private _api: FlowdaptAPI;
}

export namespace ResourceEditor {
  export interface IOptions {
    api: FlowdaptAPI;
    editorServices: IEditorServices;
    contents: Contents.IManager;
    collection: Collection;
    name: string;
    /** The folder to save into (the file browser's). */
    folder: () => string;
  }
}
