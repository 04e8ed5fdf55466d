"""``segue serve``: protect photos from a web page or an HTTP call (the ``serve`` extra).

* ``config``: :class:`ServeConfig`, checked when made (imports nothing heavy);
* ``uploads``: a request's photos read into memory with a limit, never to disk;
* ``app``: :func:`~segue_cli.serve.app.create_app`, the FastAPI app over one ``Protector``;
* ``static/``: the page (HTML, CSS, JS; no build step, no CDN).
"""
