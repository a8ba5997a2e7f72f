"""The test and benchmark harness: the one place to start and stop the project's servers for
tests/, bench/ and deploy/prod.py, and to hold what tests and benchmarks share.

Nothing here ships with the product (the console, the Docker image): it is imported by tests/,
bench/ and deploy/prod.py only, never the other way round.

- `project`: where things are (repository root, trained model, Rasa command, quiet environment).
- `ports`: free loopback ports.
- `waiting`: readiness and polling loops (`wait_http`, `poll_until`, `wait_until`).
- `processes`: start a process with its log file, stop it.
- `servers`: an action server and a Rasa server on free ports (what `make run` starts).
- `topology`: the production topology of deploy/prod.py with its own PostgreSQL database,
  Redis key prefix and Graph API stub.
- `console`: the review console as a real process, staff accounts, a logged-in HTTP client.
- `web_page`: the chat page (web/serve.py) on a free port.
- `graph_stub`: a local Graph API (Messenger Send API) that records what was sent.
- `postgres`, `redis`: a scratch PostgreSQL database, a scratch Redis key prefix.
- `socketio_client`: a socket.io client speaking the website widget's protocol.
- `browser`: headless Chromium (the machine's, driven by Playwright).
- `nlu_holdout`, `blind_set`, `sklearn_baseline`: the held-out NLU set, the blind conversation
  set and the scikit-learn baseline, shared by the tests and the benchmarks.
"""
