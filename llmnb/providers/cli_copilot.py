"""``type: copilot_cli`` — GitHub Copilot CLI, non-interactive.

Profile::

    copilot:
      type: copilot_cli
      model: gpt-5                        # "default": the CLI's own choice
      allowed_tools: ["shell(git:*)"]     # default: --deny-tool=shell,write,url
      trace: true                         # --share transcript and --log-dir in trace_dir
      options: {resume: <session id> | last}

The prompt is piped on stdin with ``-s`` (only the answer on stdout) and
``--no-ask-user``. Copilot reports no token counts, so usage is estimated (and labelled
so). With ``trace: true``, ``--share=<trace_dir>/<call>.copilot.md`` exports the session
transcript and ``--log-dir=<trace_dir>/copilot-logs`` keeps the CLI's logs.
``options.resume: last`` (or ``continue: true``) continues the most recent session.
"""

from __future__ import annotations

from typing import ClassVar

from llmnb.providers.cli import CLICall, CLIProvider
from llmnb.providers.cli_process import is_secret_name

__all__ = ["CopilotCLIProvider"]


class CopilotCLIProvider(CLIProvider):
    """GitHub Copilot CLI, non-interactive (prompt piped on stdin, ``-s``)."""

    type_name: ClassVar[str] = "copilot_cli"
    binary: ClassVar[str] = "copilot"
    npm_package: ClassVar[str] = "@github/copilot"
    docs_url: ClassVar[str] = "https://docs.github.com/copilot/how-tos/copilot-cli"
    login_hint: ClassVar[str] = (
        "Run `copilot login`, or pass a token with `env: {COPILOT_GITHUB_TOKEN: ...}`."
    )

    def args(self, call: CLICall) -> list[str]:
        argv = ["-s", "--no-ask-user", *self.model_args(joined=True)]
        allowed = self.tool_list("allowed_tools")
        denied = self.tool_list("disallowed_tools")
        if allowed:
            argv.append("--allow-tool=" + ",".join(allowed))
        elif not denied:
            denied = ["shell", "write", "url"]  # read-only unless the profile says otherwise
        if denied:
            argv.append("--deny-tool=" + ",".join(denied))
        secret_names = [n for n in self.profile.get("env") or {} if is_secret_name(str(n))]
        if secret_names:  # copilot redacts these from its own output and transcripts too
            argv.append("--secret-env-vars=" + ",".join(secret_names))
        share = call.trace.artifact("copilot.md")
        if share is not None and call.trace.folder is not None:
            argv.append(f"--share={share}")
            # a --log-dir of the profile's own args wins (two would leave copilot to pick)
            if not any(a == "--log-dir" or a.startswith("--log-dir=") for a in self.user_args()):
                argv.append(f"--log-dir={call.trace.folder / 'copilot-logs'}")
        target = self.resume_target()
        if target == "last" or (not target and self.options.get("continue")):
            argv.append("--continue")
        elif target:
            argv.append(f"--resume={target}")
        return argv + self.user_args()
