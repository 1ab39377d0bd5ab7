"""One place through which every robot utterance is scheduled, in the spirit of LiveKit's
SpeechHandle queue.

The reply, a `say` action, the notice after a rejected action and a resumed reply are all
handles from here: they play one after another in the order they were scheduled, and a
barge-in (`interrupt()`) silences whatever is playing and everything still queued, so no
sentence of an interrupted turn is ever heard afterwards. `pause()` silences them while a
voice over the robot is judged and `resume()` plays on; an `interrupt()` ends a pause.
Nothing here waits for playout on behalf of a caller: callers that need it await
`wait_quiet()` themselves.
"""

from __future__ import annotations

import asyncio

from omni_agent.speech.handle import SpeechHandle, SpeechOutput


class SpeechScheduler:
    def __init__(self, output: SpeechOutput) -> None:
        self.output = output
        self._live: list[SpeechHandle] = []
        self._epoch = 0
        """Counts interruptions: an utterance queued before one never starts after it."""
        self.paused = False

    @property
    def audible(self) -> bool:
        """Something is playing or waiting to play."""
        return bool(self.playing)

    @property
    def playing(self) -> list[SpeechHandle]:
        """Utterances playing or waiting to play."""
        self._live = [h for h in self._live if not h.done]
        return list(self._live)

    @property
    def epoch(self) -> int:
        """Changes with every interruption."""
        return self._epoch

    def open(self, since: int | None = None) -> SpeechHandle:
        """A streamed utterance that starts at once (the turn's reply); text and backend
        audio are pushed into it as they arrive. With `since` (an `epoch` read earlier), an
        interruption after that point means it never plays."""
        handle = self.output.start()
        if since is not None and since != self._epoch:
            handle.interrupt()
            return handle
        self._live.append(handle)
        if self.paused:
            handle.pause()  # it starts where a paused robot is: silent until resume()
        return handle

    def say(self, text: str) -> asyncio.Future[SpeechHandle]:
        """Speak `text` after everything scheduled before it has played out.

        The future gives the handle once it has started (await its `wait_for_playout()`
        for the end). An interruption after this call, even before the utterance's turn
        comes, means it never plays: the handle is then already interrupted and empty.
        """
        return asyncio.ensure_future(self._say_when_quiet(text, self._epoch))

    async def _say_when_quiet(self, text: str, epoch: int) -> SpeechHandle:
        await self.wait_quiet()
        handle = self.output.start()
        if epoch != self._epoch:
            handle.interrupt()
            return handle
        self._live.append(handle)
        if self.paused:
            handle.pause()
        handle.push_text(text)
        handle.end_input()
        return handle

    def pause(self) -> None:
        """A voice over the robot is being judged: silence everything at once, keep places."""
        self.paused = True
        for handle in self.playing:
            handle.pause()

    def resume(self) -> None:
        """It was no barge-in: play on from where the pause stopped."""
        self.paused = False
        for handle in self.playing:
            handle.resume()

    def interrupt(self) -> bool:
        """Barge-in: stop what is playing and drop what is queued. True if anything was."""
        self.paused = False  # the pause became the stop; the next reply plays
        self._epoch += 1
        live = [h for h in self._live if not h.done]
        self._live = []
        for handle in live:
            handle.interrupt()
        return bool(live)

    async def wait_quiet(self) -> None:
        """Until everything scheduled so far has played out (or been interrupted)."""
        while live := [h for h in self._live if not h.done]:
            await asyncio.wait([asyncio.ensure_future(h.wait_for_playout()) for h in live])

    async def close(self) -> None:
        self.interrupt()
        await self.output.close()
