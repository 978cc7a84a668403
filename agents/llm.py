"""Chat models: :func:`create_chat_model` builds any LangChain chat model from a ``provider:model`` spec (an
OpenAI-compatible local server included, by base URL), importing the provider's package only then and
naming the package to install when it is missing. Without a spec there is no LLM: the offline router and
the planner's explicit policy decide, and the agents call their tools directly.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

#: provider -> (module that must be importable, package to install)
PROVIDER_PACKAGES: dict[str, tuple[str, str]] = {
    "openai": ("langchain_openai", "langchain-openai"),
    "azure_openai": ("langchain_openai", "langchain-openai"),
    "anthropic": ("langchain_anthropic", "langchain-anthropic"),
    "ollama": ("langchain_ollama", "langchain-ollama"),
    "google_genai": ("langchain_google_genai", "langchain-google-genai"),
    "google_vertexai": ("langchain_google_vertexai", "langchain-google-vertexai"),
    "mistralai": ("langchain_mistralai", "langchain-mistralai"),
    "groq": ("langchain_groq", "langchain-groq"),
    "huggingface": ("langchain_huggingface", "langchain-huggingface"),
    "bedrock": ("langchain_aws", "langchain-aws"),
    "bedrock_converse": ("langchain_aws", "langchain-aws"),
    "fireworks": ("langchain_fireworks", "langchain-fireworks"),
    "together": ("langchain_together", "langchain-together"),
    "deepseek": ("langchain_deepseek", "langchain-deepseek"),
    "xai": ("langchain_xai", "langchain-xai"),
}
#: specs that mean "no LLM": the offline router and the explicit policy
OFFLINE_SPECS = frozenset({"", "none", "offline", "router"})


class LLMUnavailableError(RuntimeError):
    """A chat model was asked for but cannot be built here (the message says what to install or set)."""


def create_chat_model(
    spec: str | None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    **kwargs: Any,
) -> BaseChatModel | None:
    """The chat model named by ``spec`` (``provider:model``), or ``None`` for the offline default.

    ``base_url`` points an OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1, LM Studio ...); with
    it a spec without a provider means ``openai:``. Local servers usually accept any ``api_key``.
    """
    if spec is None or spec.strip().lower() in OFFLINE_SPECS:
        return None
    spec = spec.strip()
    provider, sep, model = spec.partition(":")
    if not sep:
        if base_url is None:
            raise LLMUnavailableError(
                f"chat model spec {spec!r} names no provider; write it as 'provider:model', e.g. "
                f"'openai:gpt-4o-mini', 'anthropic:claude-3-5-haiku-latest', 'ollama:llama3.1', or give a "
                "base URL for an OpenAI-compatible server (then 'openai:' is assumed)"
            )
        provider, model = "openai", spec
    if not model:
        raise LLMUnavailableError(f"chat model spec {spec!r} names no model after '{provider}:'")
    module, package = PROVIDER_PACKAGES.get(provider, (f"langchain_{provider}", f"langchain-{provider}"))
    if importlib.util.find_spec(module) is None:
        raise LLMUnavailableError(
            f"the chat model {provider}:{model} needs the package {package!r}, which is not installed: "
            f"run `pip install {package}` in SkyScout's virtual environment, or unset the LLM setting to "
            "use the offline router"
        )
    from langchain.chat_models import init_chat_model

    options: dict[str, Any] = {"temperature": temperature, **kwargs}
    if base_url is not None:
        options["base_url"] = base_url
        options.setdefault("api_key", api_key or "not-needed")
    elif api_key is not None:
        options["api_key"] = api_key
    try:
        return init_chat_model(model, model_provider=provider, **options)
    except ImportError as exc:  # a dependency of the provider package itself
        raise LLMUnavailableError(f"cannot load the chat model {provider}:{model}: {exc}") from exc
    except ValueError as exc:
        raise LLMUnavailableError(f"cannot build the chat model {provider}:{model}: {exc}") from exc


__all__ = ["LLMUnavailableError", "create_chat_model"]
