/**
 * A page of this Jupyter server (the flowdapt dashboard, a cluster dashboard through
 * jupyter-server-proxy) in a main-area frame.
 */
import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import type { LabIcon } from '@jupyterlab/ui-components';

export function frameWidget(id: string, url: string, label: string, icon?: LabIcon): MainAreaWidget<IFrame> {
  // Same-origin pages behind Jupyter's authentication: they need their scripts, cookies and websockets.
  const content = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-popups', 'allow-downloads'] });
  content.url = url;
  const widget = new MainAreaWidget({ content });
  widget.id = id;
  widget.title.label = label;
  widget.title.closable = true;
  if (icon) {
    widget.title.icon = icon;
  }
  widget.addClass('jp-flowdapt-frame');
  return widget;
}
