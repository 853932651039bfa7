"""The error tree every Switchboard layer raises.

One root, a few subclasses. The HTTP layer maps these to status codes in one
handler; the CLI prints their message and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SwitchboardError(Exception):
    """Root of every error Switchboard raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: where it is, what is wrong, and the limit broken."""

    field: str
    message: str
    limit: str | None = None

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text} (limit: {self.limit})" if self.limit else text


@dataclass
class InvalidTicketError(SwitchboardError):
    """A ticket or raw payload failed validation; lists every invalid field."""

    problems: list[FieldProblem] = field(default_factory=list)
    channel: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" ({self.channel} payload)" if self.channel else ""
        listed = "; ".join(str(problem) for problem in self.problems)
        return f"invalid ticket{where}: {listed}"


class PayloadTooLargeError(InvalidTicketError):
    """A raw payload or field is over its size limit (HTTP 413)."""


class UnknownChannelError(InvalidTicketError):
    """The channel named is not one Switchboard knows (HTTP 400)."""


@dataclass
class InvalidInputError(SwitchboardError):
    """Input other than a ticket failed validation (feedback, a query): HTTP 422.

    `subject` says what was invalid ("feedback", "query"); every invalid field
    is listed, not only the first.
    """

    problems: list[FieldProblem] = field(default_factory=list)
    subject: str = "input"

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        listed = "; ".join(str(problem) for problem in self.problems)
        return f"invalid {self.subject}: {listed}"


class ConfigError(SwitchboardError):
    """A configuration file is missing or invalid; names the file and path."""


class DataError(SwitchboardError):
    """A training or evaluation data set cannot be used as given."""


class RegistryError(SwitchboardError):
    """The model registry has no such version, alias or model."""


class GateFailedError(SwitchboardError):
    """A promotion gate refused a model version; nothing was changed."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("promotion refused: " + "; ".join(failures))
