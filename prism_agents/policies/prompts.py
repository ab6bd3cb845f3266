"""What the policy reads at each step, and the SFT examples cut from expert trajectories.

One :class:`PromptBuilder` serves training, probing and rollouts, so the token
ids a learner trains on are exactly the ids the generator is prompted with
(generators must send :meth:`PromptBuilder.prompt_ids` as token ids, not
re-tokenize text).

Templates (:mod:`prism_agents.policies.templates`) are declared by each
environment class and can be registered by name. The ALFWorld template renders, with
``history: window`` (default), one two-message chat per step::

    system: You are playing a household text game. Reply with exactly one action, such as
            'go to desk 1' or 'open drawer 2', nothing else.
    user:   Your task is to: put a clean lettuce in diningtable.
            Recent steps:
            You are in the middle of a room. ... you see a cabinet 1, ...
            > go to fridge 1
            Now: You arrive at fridge 1. The fridge 1 is closed.
            Admissible actions:
            go to cabinet 1
            open fridge 1
            ...

``Recent steps`` lists, for each of the last ``window`` steps, the observation
seen before the action and the action (``> action``); it is omitted when empty.
On real ALFWorld expert episodes with the SmolLM2 tokenizer a window-3 step is
about 310 tokens (at most about 430), a window-1 step about 260.
With ``history: full`` the episode is one growing conversation::

    system:    (as above)
    user:      <instruction> / Now: <first observation> / Admissible actions: ...
    assistant: <action 1>
    user:      Now: <observation after action 1> / Admissible actions: ...
    assistant: <action 2>
    ...

Full history grows with the episode (every turn lists its admissible actions,
so that each turn reads the same in training and at inference): about 180
tokens per step, e.g. 2,200 tokens for a 12-step ALFWorld episode and 9,000
for a 50-step one, beyond SmolLM2's 8,192-token context.

Token ids come from the tokenizer's chat template, rendered turn by turn: each
turn's text is the difference between renders of consecutive message
prefixes, and text pieces are tokenized separately and concatenated. The loss
mask is 1 on an assistant turn's content and its end-of-turn token and 0 on
everything else (system, user, the ``assistant`` header, the newline after
the end-of-turn token). A template whose render of a prefix is not a prefix of
the full render (one that rewrites earlier turns) is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from prism_agents.config.training import PromptConfig
from prism_agents.policies.templates import get_template
from prism_agents.types import Step, Trajectory

Message = dict[str, str]


@dataclass
class TrainingExample:
    """One token sequence to train on, with its loss mask."""

    input_ids: list[int]
    """Prompt and action tokens, as the policy sees them."""
    loss_mask: list[int]
    """1 on action tokens (including each end-of-turn token), 0 elsewhere; same length as input_ids."""
    trajectory_id: str
    """Trajectory the example was cut from."""
    step: int | None
    """Step index in window mode; None for a whole-episode example (full mode)."""


class PromptBuilder:
    """Builds chat messages, prompt token ids and SFT examples for one environment's template."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: PromptConfig, env: str) -> None:
        config.validate()
        self.tokenizer = tokenizer
        self.config = config
        self.template = get_template(config.template or env)
        if tokenizer.eos_token is None or tokenizer.chat_template is None:
            raise ValueError("the policy tokenizer needs a chat template and an end-of-turn (eos) token")

    # ----- messages -------------------------------------------------------------------------------

    def messages(
        self, instruction: str, history: Sequence[Step], observation: str, admissible: Sequence[str]
    ) -> list[Message]:
        """The chat shown before the next action; ``history`` holds the episode's earlier steps in order."""
        template = self.template
        if self.config.history == "window":
            recent = history[max(0, len(history) - self.config.window) :] if self.config.window else []
            lines = [template.task.format(instruction=instruction)]
            if recent:
                lines.append(template.history_header)
                lines += [
                    template.history_step.format(observation=step.observation.strip(), action=step.action)
                    for step in recent
                ]
            lines += self._observation_lines(observation, admissible)
            return [_message("system", template.system), _message("user", "\n".join(lines))]
        shown = [(s.observation, s.admissible_actions) for s in history] + [(observation, admissible)]
        messages = [_message("system", template.system)]
        for index, (seen, actions) in enumerate(shown):
            lines = [template.task.format(instruction=instruction)] if index == 0 else []
            messages.append(_message("user", "\n".join(lines + self._observation_lines(seen, actions))))
            if index < len(history):
                messages.append(_message("assistant", history[index].action))
        return messages

    def _observation_lines(self, observation: str, admissible: Sequence[str]) -> list[str]:
        lines = [self.template.observation.format(observation=observation.strip())]
        limit = self.config.max_admissible_actions
        if limit and admissible:
            lines.append(self.template.actions_header)
            lines += admissible[:limit]
            if len(admissible) > limit:
                lines.append(self.template.actions_omitted.format(count=len(admissible) - limit))
        return lines

    # ----- token ids ------------------------------------------------------------------------------

    def prompt_ids(
        self, instruction: str, history: Sequence[Step], observation: str, admissible: Sequence[str]
    ) -> list[int]:
        """Token ids to generate the next action from (they end with the assistant header)."""
        ids, _ = self.encode(self.messages(instruction, history, observation, admissible), add_generation_prompt=True)
        return ids

    def next_prompt_ids(
        self, instruction: str, history: Sequence[Step], observation: str, admissible: Sequence[str]
    ) -> tuple[list[int], bool]:
        """What to feed the policy before its next completion, and whether it continues the served context.

        With ``history: full`` after a policy step: True, and the tokens that follow that step's served prompt
        and completion (its end-of-turn token when the completion stopped without it, the turn's closing,
        the next user turn and the assistant header), so the served conversation holds the exact sampled
        tokens. Otherwise (window history, the first step): False, and the whole prompt (:meth:`prompt_ids`).
        """
        if self.config.history != "full" or not history or history[-1].prompt_token_ids is None:
            return self.prompt_ids(instruction, history, observation, admissible), False
        ids, mask = self.encode(self.messages(instruction, history, observation, admissible), add_generation_prompt=True)
        after_last_action = len(mask) - mask[::-1].index(1)
        completion = history[-1].completion_token_ids or []
        eos = self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token)
        closing = [] if completion and completion[-1] == eos else [eos]
        return closing + ids[after_last_action:], True

    def system_ids(self) -> list[int]:
        """Token ids of the system turn a conversation starts with (what truncation keeps in front)."""
        ids, _ = self.encode(self.messages("", [], "", [])[:1], add_generation_prompt=False)
        return ids

    def examples(self, trajectory: Trajectory) -> list[TrainingExample]:
        """SFT examples of an expert trajectory: one per step (window) or one per trajectory (full)."""
        steps = trajectory.steps
        if not steps:
            return []
        if self.config.history == "full":
            messages = self.messages(trajectory.instruction, steps, "", [])[:-1]  # drop the unanswered last turn
            ids, mask = self.encode(messages, add_generation_prompt=False)
            return [TrainingExample(ids, mask, trajectory.trajectory_id, None)]
        examples = []
        for index, step in enumerate(steps):
            messages = self.messages(trajectory.instruction, steps[:index], step.observation, step.admissible_actions)
            ids, mask = self.encode(messages + [_message("assistant", step.action)], add_generation_prompt=False)
            examples.append(TrainingExample(ids, mask, trajectory.trajectory_id, index))
        return examples

    def encode(self, messages: list[Message], add_generation_prompt: bool) -> tuple[list[int], list[int]]:
        """Token ids of a chat and its loss mask (1 on assistant content and end-of-turn tokens)."""
        ids: list[int] = []
        mask: list[int] = []
        rendered = ""
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            header = self._render(messages[:index], add_generation_prompt=True, after=rendered)
            turn = self._render(messages[: index + 1], add_generation_prompt=False, after=header)
            body = turn[len(header) :]
            cut = body.rfind(self.tokenizer.eos_token)
            if cut < 0:
                raise ValueError("the chat template does not close assistant turns with the eos token")
            cut += len(self.tokenizer.eos_token)
            self._append(ids, mask, header[len(rendered) :], supervised=False)
            self._append(ids, mask, body[:cut], supervised=True)
            self._append(ids, mask, body[cut:], supervised=False)
            rendered = turn
        tail = self._render(messages, add_generation_prompt=add_generation_prompt, after=rendered)
        self._append(ids, mask, tail[len(rendered) :], supervised=False)
        return ids, mask

    def _render(self, messages: list[Message], add_generation_prompt: bool, after: str) -> str:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        if not text.startswith(after):
            raise ValueError(
                "the chat template rewrites earlier turns when a turn is added; "
                "token-exact training prompts need a prefix-stable template"
            )
        return text

    def _append(self, ids: list[int], mask: list[int], text: str, supervised: bool) -> None:
        if text:
            piece = self.tokenizer(text, add_special_tokens=False).input_ids
            ids += piece
            mask += [int(supervised)] * len(piece)


def _message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def served_context(steps: Sequence[Step]) -> list[int]:
    """The tokens the policy's context holds after the last of ``steps``: the last step's served prompt (rebuilt
    from the recorded :attr:`~prism_agents.types.Step.prompt_token_ids` of the steps it continues) and its
    sampled completion; empty when the last step's tokens were not recorded (an expert step)."""
    context: list[int] = []
    for step in steps:
        if step.prompt_token_ids is None or step.completion_token_ids is None:
            context = []
            continue
        context = (context if step.continues_context else []) + step.prompt_token_ids + step.completion_token_ids
    return context
