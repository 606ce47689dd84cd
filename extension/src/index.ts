import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@flowdapt/labextension:plugin',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    console.log('flowdapt', app.name);
  }
};
export default plugin;
