"""Named chat templates for base models that ship none (model.chat_template=<name>).

ChatML marks the assistant turn with `{% generation %}` so TRL's assistant-only loss
works with it too.
"""

from __future__ import annotations

from medalign.registry import register

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% endif %}{% endfor %}"
)

# A base model's "chat": each turn's text as written, a newline after the user's, the
# answer closed by EOS. No role markers for a small model to learn to read past: the
# synthetic world's model (model=world) learns an answer format in a third of the steps
# ChatML needs (50 vs 150 steps to recall 90% of held-out facts).
PLAIN = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
)

register("chat_template", "chatml")(CHATML)
register("chat_template", "plain")(PLAIN)
register("chat_template", "mistral")(MISTRAL)
