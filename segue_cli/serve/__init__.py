"""``segue serve``: protect photos from a web page or an HTTP call (the ``serve`` extra).

* ``config``: :class:`ServeConfig`, checked when made (imports nothing heavy);
* ``uploads``: a request's photos read into memory with a limit and deadlines, never to disk;
* ``options``: a request's fields checked into ``protect_file``'s arguments;
* ``guards``: host allow-list, cross-site refusal, token, security headers, the log line;
* ``protocol``: uvicorn's h11 protocol with a head deadline and a per-client connection cap;
* ``openapi``: the schema of ``POST /v1/protect`` and the self-contained ``/docs`` page;
* ``app``: :func:`~segue_cli.serve.app.create_app`, the FastAPI app over one ``Protector``;
* ``static/``: the page (HTML, CSS, JS; no build step, no CDN).
"""
