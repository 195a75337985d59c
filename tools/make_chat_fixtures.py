#!/usr/bin/env python3
"""make_chat_fixtures.py - reference renderings of chat templates for tests/unit/test_chat_template.c.

Writes tests/fixtures/chat/<name>.json, one file per template family:
  {"source": where the template comes from,
   "templates": [{"name", "template", "cases": [
       {"name", "messages": [{"role", "content"}], "add_generation_prompt", "bos_token",
        "eos_token", "extra": {name: string}, and either "expected": the rendered text
        or "error": the exception message with "error_type": its class}]}]}
bos_token / eos_token null mean "not passed" (the template sees them undefined).

The templates are the published `chat_template` strings of the models' tokenizer_config.json
(SmolLM2's is read from the GGUF at ~/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf when it
exists, key tokenizer.chat_template), plus a Japanese instruction template in the style of rinna /
CyberAgent open-calm models and a set of small templates exercising each Jinja feature the C
renderer supports. They are rendered exactly the way transformers' apply_chat_template renders:
transformers.utils.chat_template_utils.render_jinja_template (jinja2 ImmutableSandboxedEnvironment
with trim_blocks, lstrip_blocks, loopcontrols, raise_exception, strftime_now, tojson), passing
tools=None, documents=None, add_generation_prompt, bos_token/eos_token and the extra variables.
Run from the repository root:  python3 tools/make_chat_fixtures.py
Needs: transformers (>= 4.43, made with 5.24), jinja2 >= 3.1.6; gguf (optional). Never used by
`make test`.
"""
import json
import os
import sys

import transformers
from transformers.utils import chat_template_utils as ctu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "chat")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus", "chat_template")
GGUF = os.path.expanduser("~/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf")

# ---------------------------------------------------------------------------------------------
# templates (as the JSON string decodes: real newlines where the JSON has \n, and a backslash-n
# pair where the JSON has \\n, i.e. a Jinja string escape)

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)

# Mistral-7B-Instruct-v0.2 (later revision, with an optional system message)
MISTRAL_V02 = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

# Mistral-7B-Instruct-v0.3 (tool-calling template)
MISTRAL_V03 = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

SMOLLM2_EMBEDDED = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# A Japanese instruction template in the style of rinna/japanese-gpt-neox-3.6b-instruction-sft
# ("ユーザー: ...<NL>システム: ...") and the CyberAgent open-calm instruction tunes, written with
# block tags on their own lines so that trim_blocks / lstrip_blocks decide the output.
JAPANESE = """{#- rinna / open-calm 風の指示テンプレート -#}
{% set ns = namespace(system='以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。', turns=0) %}
{% if messages[0]['role'] == 'system' %}
    {% set ns.system = messages[0]['content'] | trim %}
{% endif %}
{{ bos_token ~ ns.system }}

{% for message in messages if message['role'] != 'system' %}
    {% if message['role'] == 'user' %}
ユーザ：{{ message['content'] | trim | replace('\\n', '<NL>') }}
        {% set ns.turns = ns.turns + 1 %}
    {% elif message['role'] == 'assistant' %}
アシスタント：{{ message['content'] | trim }}{{ eos_token }}
    {% else %}
        {{ raise_exception('ロール「' ~ message['role'] ~ '」は使えません（user と assistant のみ）') }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
アシスタント：
{%- endif %}
"""

# ---------------------------------------------------------------------------------------------
# conversations

SYS = {"role": "system", "content": "You are a concise assistant."}
CONV = {
    "sys_user_assistant": [
        SYS,
        {"role": "user", "content": "What is LoRA?"},
        {"role": "assistant", "content": "A low-rank adapter for fine-tuning."},
    ],
    "single_user": [{"role": "user", "content": "Hello!"}],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the GPU cross the road?"},
        {"role": "user", "content": "Why?"},
    ],
    "system_multi": [
        SYS,
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ],
    "japanese": [
        {"role": "system", "content": "あなたは親切な日本語アシスタントです。"},
        {"role": "user", "content": "日本の首都はどこですか？\n簡潔に答えてください。"},
        {"role": "assistant", "content": "東京です。"},
        {"role": "user", "content": "\u3000ありがとう！ではカタカナで「トウキョウ」と書くと？\u3000"},
    ],
    "emoji": [
        {"role": "user", "content": "Hi 👋🏽 can you help? 😶‍🌫️"},
        {"role": "assistant", "content": "Sure! 🚀✅ Ask away."},
        {"role": "user", "content": "Thanks 🙏 — naïve café"},
    ],
    "whitespace": [
        {"role": "user", "content": "  padded question \n\n"},
        {"role": "assistant", "content": "\n answer with trailing spaces   "},
        {"role": "user", "content": "\t\u3000全角スペース\u3000\n"},
    ],
    "template_like_content": [
        {"role": "user", "content": "{{ not a tag }} {% if x %} {# c #} <s>[INST] \\n 'q' \"dq\""},
        {"role": "assistant", "content": "<|im_end|> </s> <end_of_turn>"},
        {"role": "user", "content": ""},
    ],
    # invalid for most templates
    "two_users": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    "assistant_first": [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "ok"}],
    "bad_role": [{"role": "user", "content": "run it"}, {"role": "tool", "content": "{\"ok\": true}"}],
    "empty": [],
}

DEFAULT_CONVS = list(CONV)


def render(template, messages, agp, bos, eos, extra):
    kwargs = dict(extra or {})
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    rendered, _ = ctu.render_jinja_template(
        conversations=[messages], chat_template=template, add_generation_prompt=agp, **kwargs)
    return rendered[0]


def make_case(name, template, messages, agp=False, bos=None, eos=None, extra=None):
    case = {"name": name, "messages": messages, "add_generation_prompt": agp, "bos_token": bos,
            "eos_token": eos, "extra": extra or {}}
    try:
        case["expected"] = render(template, messages, agp, bos, eos, extra)
    except Exception as e:  # the C renderer must fail too
        case["error"] = str(e)
        case["error_type"] = type(e).__name__
    return case


def model_cases(template, bos, eos, convs=DEFAULT_CONVS, extra=None):
    cases = []
    for cname in convs:
        for agp in (False, True):
            cases.append(make_case(f"{cname}{'+gen' if agp else ''}", template, CONV[cname], agp,
                                   bos, eos, extra))
    return cases


def smollm2_template():
    if os.path.exists(GGUF):
        try:
            from gguf import GGUFReader
            r = GGUFReader(GGUF)
            f = r.fields["tokenizer.chat_template"]
            t = bytes(f.parts[f.data[0]]).decode("utf-8")
            assert t == SMOLLM2_EMBEDDED, "the GGUF template differs from the embedded copy"
            return t, "tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf"
        except ImportError:
            pass
    return SMOLLM2_EMBEDDED, "HuggingFaceTB/SmolLM2-135M-Instruct tokenizer_config.json (embedded)"


# ---------------------------------------------------------------------------------------------
# feature templates: each Jinja construct the C renderer claims to support

FEATURES = [
    ("literals", "{{ 'a' }}{{ \"b\" }}{{ 1 }}{{ -2 }}{{ 1.5 }}{{ true }}{{ True }}{{ none }}{{ None }}"
     "{{ [1, 'x', none] }}{{ {'k': 'v', 'n': 1} }}{{ (1, 2) }}{{ (1,) }}{{ () }}{{ [] }}{{ {} }}"),
    ("escapes", "{{ 'tab\\there\\nnew \\\\ \\' \\x41 \\u3042 \\U0001F600 \\101 \\a\\b\\f\\v' }}|"
     "{{ 'a\\qb' }}|{{ \"line\\\ncont\" }}|{{ '\\é' }}"),
    ("adjacent_strings", "{{ 'a' 'b' \"c\" }}"),
    ("numbers", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 4 / 2 }} "
     "{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1_000 }} {{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 1e3 }} {{ 0.1 + 0.2 }} "
     "{{ 1.5e-7 }} {{ 1e16 }} {{ 1e15 }} {{ 3 * 1.5 }} {{ 10 - 2.5 }} {{ -7.5 // 2 }} {{ -7.5 % 2 }} "
     "{{ true + 1 }} {{ -(3) }} {{ +4 }} {{ 1/3 }} {{ 2.0 ** 0.5 }} {{ 123456789 * 1000 }} {{ 0.0001 }} "
     "{{ 0.00001 }} {{ -0.0 }} {{ 100.0 }}"),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ not true or true }} "
     "{{ not (true or true) }} {{ 1 if false else 2 if false else 3 }} {{ 'a' ~ 'b' + 'c' }} "
     "{{ 1 ~ 2 * 3 }} {{ -1|abs }} {{ not 1 == 2 }} {{ 'x' if 1 in [1] else 'y' }}"),
    ("compare", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1, 2] < [1, 3] }} "
     "{{ [1] < [1, 0] }} {{ 1 == 1.0 }} {{ 1 == true }} {{ 'x' != 'y' }} {{ 'ab' in 'cabd' }} "
     "{{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ none == none }} "
     "{{ (1, 2) == [1, 2] }} {{ (1, 2) == (1, 2) }} {{ {'a': 1} == {'a': 1.0} }} {{ 2 >= 2.0 }} "
     "{{ 'é' > 'z' }} {{ [] == [] }} {{ 'a' == 1 }} {{ x == y }} {{ 'a' in u }}"),
    ("and_or", "{{ '' or 'default' }}|{{ 'x' and 'y' }}|{{ 0 and 1 }}|{{ none or [] }}|{{ 'a' if 'b' }}|"
     "{{ 'a' if '' }}|{{ undefined_thing or 'fallback' }}|{{ [0] and 'list' }}"),
    ("messages_loop", "{% for m in messages %}{{ loop.index0 }}/{{ loop.index }}/{{ loop.length }}/"
     "{{ loop.revindex }}/{{ loop.revindex0 }} {{ loop.first }} {{ loop.last }} {{ loop.depth }} "
     "{{ m.role }}={{ m['content'] }}\n{% endfor %}"),
    ("loop_filter_else", "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}:"
     "{{ m.role }} {% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}|"
     "{% for x in [1, 2] if x > 5 %}{{ x }}{% else %}filtered{% endfor %}"),
    ("loop_prev_next_cycle", "{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} "
     "{{ loop.cycle('odd', 'even') }} {{ loop }};{% endfor %}{{ loop }}"),
    ("break_continue", "{% for x in range(10) %}{% if x is odd %}{% continue %}{% endif %}"
     "{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for a in [1, 2] %}"
     "{% for b in [1, 2, 3] %}{% if b == 2 %}{% break %}{% endif %}{{ a }}{{ b }}{% endfor %}{% endfor %}"),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{{ loop.length }} "
     "{% endfor %}{{ loop.index }};{% endfor %}"),
    ("tuple_unpack", "{% for k, v in {'a': 1, 'b': [2]}.items() %}{{ k }}={{ v }} {% endfor %}"
     "{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}{% set x, y = 'pq' %}{{ y }}{{ x }}"
     "{% set (p, q) = (1, 2) %}{{ q }}{{ p }}{% for (k, v) in {'z': 0}|items %}{{ k }}{{ v }}{% endfor %}"),
    ("scoping", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + i %}{{ x }} {% endfor %}{{ x }}"
     "{% if true %}{% set x = 5 %}{% endif %}{{ x }}{% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]"
     "{% endif %}{% set y = i %}{% endfor %}{{ i }}"),
    ("namespace", "{% set ns = namespace(found=false, n=0, text='') %}{% for m in messages %}"
     "{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}"
     "{% set ns.text = ns.text ~ m.content[:3] %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }} "
     "{{ ns.text }} {{ ns }} {{ ns.missing }}|{% set ns2 = namespace({'a': 1}, b=2) %}{{ ns2.a }}{{ ns2.b }}"
     "{% set ns3 = namespace() %}{% set ns3.list = [1] %}{% set ns3.list = ns3.list + [2] %}{{ ns3.list }}"),
    ("slicing", "{{ messages[1:] | length }} {{ messages[-1].role }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} "
     "{{ 'hello'[::2] }} {{ [1,2,3,4,5][-2:] }} {{ [1,2,3][::-1] }} {{ 'こんにちは'[1:3] }} "
     "{{ 'こんにちは'[-1] }} {{ [1,2,3][5:] }} {{ 'abc'[10] }}|{{ [1,2][7] }}|{{ [1,2,3][1:100] }} "
     "{{ 'abcdef'[4:1:-1] }} {{ 'abcdef'[-100:] }} {{ 'abcdef'[:-2] }} {{ (1, 2, 3)[1:] }} "
     "{{ 'abcdef'[5:0:-2] }} {{ 'abc'[true] }} {{ 'ab😀c'[::-1] }}"),
    ("attr_item", "{{ messages[0]['role'] }} {{ messages[0].role }} {{ messages.0.role }} "
     "{{ messages[0].missing }}|{{ messages[0]['missing'] is defined }} {{ none.x }}|{{ 'abc'.nope }}|"
     "{{ messages[0].items()|list|length }} {{ messages[0]._private }}|"
     "{{ {'_k': 1}._k }} {{ {'a': {'b': 'deep'}}['a']['b'] }} {{ {'a': {'b': 'deep'}}.a.b }}"),
    ("tests", "{{ x is defined }} {{ messages is defined }} {{ none is none }} {{ 'a' is string }} "
     "{{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ true is number }} "
     "{{ true is integer }} {{ [] is iterable }} {{ 'x' is iterable }} {{ u is iterable }} {{ {} is mapping }} "
     "{{ 'a' is sequence }} {{ u is sequence }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} "
     "{{ 9 is divisibleby(4) }} {{ 'a' is equalto 'a' }} {{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 2 is lt(1) }} "
     "{{ 'x' is in 'xyz' }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'aB' is lower }} {{ '1' is upper }} "
     "{{ 'x' is not string }} {{ none is true }} {{ true is true }} {{ false is false }} {{ 0 is false }} "
     "{{ x is undefined }} {{ raise_exception is callable }} {{ 'x'.strip is callable }} {{ none is sameas none }} "
     "{{ 2 is ge 2 }} {{ 2 is ne 3 }} {{ 1 is lessthan 2 }} {{ 3 is greaterthan 2 }} {{ 2 is le 1 }} "
     "{{ messages is sequence }} {{ namespace() is mapping }} {{ 'abc' is sameas 'abc' }} "
     "{% set a = [1] %}{% set b = a %}{{ a is sameas b }} {{ [1] is sameas [1] }} {{ 7 is sameas 7 }} "
     "{{ false is sameas 0 }}"),
    ("filters_str", "{{ '  hi  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'hello world' | upper }}|"
     "{{ 'HeLLo' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'hello big-world (x) [y] <z> {w}' | title }}|"
     "{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'abc' | replace('', '-') }}|{{ 123 | string }}|{{ 'abc' | reverse }}|"
     "{{ 'abc' | list }}|{{ 'ßtraße ﬁx' | upper }}|{{ 'ΑΣ ΣΑ ΟΔΟΣ.' | lower }}|{{ 'ǆemal' | capitalize }}|"
     "{{ none | trim }}|{{ u | upper }}|{{ 12 | replace('1', 'x') }}|{{ 'éÉ' | upper }}{{ 'ÀÉ' | lower }}|"
     "{{ 'ﬁrst ßtep' | title }}|{{ 'x' | replace('x', 'y', 0) }}"),
    ("filters_list", "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ [3, 1, 2] | length }} "
     "{{ [3, 1, 2] | count }} {{ [1, 2, 3] | join('-') }} {{ ['a', none, 1] | join }} "
     "{{ messages | map(attribute='role') | join(',') }} "
     "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
     "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }} "
     "{{ [0, 1, '', 'a'] | select | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} "
     "{{ ['a', 'b'] | map('upper') | list }} {{ [1, 2] | reverse | list }} {{ {'a': 1} | items | list }} "
     "{{ messages | map(attribute='nope', default='?') | join }} {{ [] | first }}|{{ 'abc' | first }}"
     "{{ 'abc' | last }} {{ {'k': 1, 'j': 2} | first }} {{ {'k': 1, 'j': 2} | list }} "
     "{{ messages | selectattr('role') | list | length }} {{ [1, 2, 3] | select('greaterthan', 1) | list }} "
     "{{ ['x', 'yy'] | map('length') | list }} {{ [' a ', ' b'] | map('trim') | join }} "
     "{{ messages | join(', ', attribute='role') }} {{ u | list }} {{ u | join }}|{{ [1, 2] | join(3) }} "
     "{{ ['a', 'b'] | map('replace', 'a', 'z') | list }} {{ messages | selectattr('role', 'in', ['user', 'system']) | list | length }}"),
    ("filters_misc", "{{ undefined_var | default('dflt') }} {{ '' | default('empty', true) }} "
     "{{ none | default('n') }} {{ 'x' | d('y') }} {{ '42' | int }} {{ '4.7' | int }} {{ 'zz' | int(7) }} "
     "{{ 3.9 | int }} {{ '0x1A' | int(0, 16) }} {{ ' 1_000 ' | int }} {{ '-5' | int }} {{ '2.5' | float }} "
     "{{ 'x' | float }} {{ 3 | float }} {{ -3 | abs }} {{ -2.5 | abs }} {{ 'a\nb\n\nc' | indent(2) }}|"
     "{{ 'a\nb' | indent(first=true) }}|{{ 'x\n\ny' | indent('> ', blank=true) }}|{{ 1.0 | string }} "
     "{{ [1, [2, 'x']] | string }} {{ '' | default('e') }} {{ false | default('f', boolean=true) }} "
     "{{ 'ab' | length }} {{ {'a': 1} | length }} {{ u | length }} {{ 'abc' | count }}"),
    ("tojson", "{{ messages[:2] | tojson }}\n{{ {'a': [1, 2.5, none, true], 'b': {'c': 'é\"\\n\\t😀\\\\'}} | tojson }}\n"
     "{{ {'z': 1, 'a': 2} | tojson(sort_keys=true) }}\n{{ {'a': [1, {'b': []}], 'c': {}} | tojson(indent=2) }}\n"
     "{{ 'ü😀' | tojson(ensure_ascii=true) }}\n{{ [1, 2] | tojson(separators=(',', ':')) }}\n"
     "{{ {1: 'x', true: 'y', none: 'z', 1.5: 'w'} | tojson }}\n{{ 'ctrl\\x01\\x1f\\x7f' | tojson }}\n"
     "{{ none | tojson }} {{ 1e100 | tojson }} {{ (1, 'a') | tojson }} {{ tools | tojson }} "
     "{{ [[]] | tojson(indent=1) }} {{ {'a': 1} | tojson(indent='\\t') }}"),
    ("string_methods", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|"
     "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }}|{{ 'a,b,,c'.split(',') }}|"
     "{{ '  a  b \\n c '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|"
     "{{ '  a b  '.split(none, 1) }}|{{ '  a b  '.rsplit(none, 1) }}|"
     "{{ 'x<think>y</think>z'.split('</think>')[-1] }}|{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}|"
     "{{ 'hello wORLD 3rd'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aXbXc'.replace('X', '-') }}|"
     "{{ 'aXbXc'.replace('X', '-', 1) }}|{{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} "
     "{{ 'abc'.find('z') }} {{ 'abcabc'.count('bc') }} {{ 'abc'.count('') }}|{{ '-'.join(['a', 'b']) }}|"
     "{{ 'l1\\nl2\\r\\nl3\\n'.splitlines() }}|{{ 'a\\nb'.splitlines(true) }}|{{ 'prefix-x'.removeprefix('prefix-') }}|"
     "{{ 'x.txt'.removesuffix('.txt') }}|{{ ' \\t'.isspace() }}{{ ''.isspace() }}|{{ 'ａｂｃ\u3000ｄ'.split() }}|"
     "{{ 'こんにちは'.find('に') }} {{ 'xyz'.index('z') }}|{{ ''.split(',') }} {{ ''.split() }}|"
     "{{ 'a,b'.split(',', 0) }}|{{ ',a,'.rsplit(',') }}"),
    ("dict_methods", "{% set d = {'a': 1, 'b': 2} %}{{ d.keys() | list }} {{ d.values() | list }} "
     "{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d | length }} {{ d['b'] }} {{ d.b }}"
     "{% for k in d %}{{ k }}{% endfor %}{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}"
     "{{ dict(x=1, y='z') }} {{ {'a': 1, 'a': 2} }} {{ d.items() | length }} {{ d.keys() | first }}"),
    ("whitespace_control", "A  {{- ' b ' -}}  C\n  {%- if true -%}  D  {%- endif -%}\n E {# comment #} F {#- c2 -#} G\n"
     "\u3000 {{- 'ideographic' -}} \u3000|{%- if true %}\u00a0x{% endif %}\n\u00a0\u3000\t{% if true %}"
     "lstrip of Unicode spaces{% endif %}\n\x0b{# c #}\u2028{% if true %}{% endif %}|{#"),
    ("trim_lstrip", "line1\n    {% if true %}\n    inside\n    {% endif %}\nline2\n  {# comment #}\nline3 "
     "{% if true %}x{% endif %}\n\t{% for i in [1,2] %}\n{{ i }}\n\t{% endfor %}\nend\n  {{ 'var' }}\n  x {% if true %}\n"
     "y{% endif %}\n{% if true %}  \nz\n{%- endif %}\n \t {# c #} \n{% if true -%}\n\n  w\n{%- endif %}\n"),
    ("plus_modifiers", "a\n    {%+ if true %}x{% endif +%}\nb\n  {%- if true +%}\ny\n{%- endif %}\n  {#+ c +#}\nq"),
    ("set_block", "{% set block %}Hello {{ messages[0].role }}!{% endset %}[{{ block }}]"
     "{% set up | upper %}shout {{ 'me' }}{% endset %}[{{ up }}]{% set t | trim | replace('a', 'o') %}  abc  {% endset %}[{{ t }}]"),
    ("macros", "{% macro render(m, prefix='> ', suffix='') %}{{ prefix }}{{ m.role }}: {{ m.content | trim }}"
     "{{ suffix }}{% endmacro %}{% for m in messages %}{{ render(m) }}|{{ render(m, suffix='!') }}|"
     "{{ render(m, '# ') }}\n{% endfor %}{% macro noargs() %}[{{ messages | length }}]{% endmacro %}"
     "{{ noargs() }}{% macro missing(a, b) %}{{ a }}-{{ b }}-{{ b is defined }}{% endmacro %}{{ missing(1) }}"
     "{% macro dflt(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ dflt('hey') }} {{ render }}"
     "{% macro outer(x) %}<{{ inner(x) }}>{% endmacro %}{% macro inner(x) %}{{ x * 2 }}{% endmacro %}{{ outer(21) }}"
     "{% for m in [1, 2] %}{% macro f() %}[{{ m }}]{% endmacro %}{{ f() }}{% endfor %}"
     "{% macro o(x) %}{% macro i() %}<{{ x }}>{% endmacro %}{{ i() }}{% endmacro %}{{ o(1) }}{{ o(2) }}"
     "{% with q = 3 %}{% macro w() %}{{ q }}{% endmacro %}{{ w() }}{% endwith %}"),
    ("with_filterblock", "{% with a = 1, b = 'two' %}{{ a }}{{ b }}{% set c = 3 %}{{ c }}{% endwith %}{{ a }}{{ c }}|"
     "{% filter upper %}abc {{ 'def' }}{% endfilter %}|{% generation %}gen {{ 1 }}{% endgeneration %}|"
     "{% filter replace('x', 'y') | trim %}  xx  {% endfilter %}|"),
    ("vars", "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|"
     "{{ tools is none }}|{{ date_string }}|{{ custom }}|{{ custom is defined }}|{{ nothing is defined }}"),
    ("unicode_len", "{{ 'こんにちは' | length }} {{ '😶‍🌫️' | length }} {{ messages[-1].content | length }} "
     "{{ '全角\u3000スペース' | trim }}|{{ '\u3000x\u3000' | trim }}|{{ 'éa' | upper }} {{ '\u0085x\u00a0' | trim }}|"
     "{{ '\u200bx\u200b' | trim }}|{{ 'x\u2028'.strip() }}|{{ '\u1680y\u205f' | trim }}"),
    ("strings_repr", "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'tab\\t', 'nl\\n', 'é', '\\x00', '\\u200b', "
     "'\\u3000', '\\\\', '\\x7f', '\\xa0', '日本', '😀', '\\r'] }}"),
    ("content_template_text", "{% for m in messages %}{{ m.content }}|{% endfor %}"),
    ("none_content", "{% for m in messages %}{{ m.content }}|{{ m.content is none }}|"
     "{{ m.content | default('d') }}|{{ m.content ~ '' }};{% endfor %}"),
    ("newline_normalize", "a\r\nb\rc\n{% if true %}\r\nd{% endif %}\r\n"),
    ("trailing_newlines", "x\n\n"),
    ("one_trailing_newline", "y{{ 1 }}\n"),
    ("comments_only", "{# only a comment #}"),
    ("empty_template", ""),
    ("undefined_printing", "[{{ nope }}][{{ messages[0].nope }}]"
     "[{{ (nope or 'x') }}][{{ nope | default }}][{{ nope ~ 'cat' }}]"),
    ("loop_over_dict_string", "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}|{% for ch in 'héllo' %}"
     "{{ ch }}.{% endfor %}|{% for x in u %}never{% else %}undef{% endfor %}"),
    ("range_fn", "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}|"
     "{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}|{{ range(4) | list }} {{ range(3) | length }} "
     "{{ range(10)[2] }} {{ range(0) | list }}"),
    # errors jinja2 raises: the C renderer must fail too
    ("raise", "{% if messages | length > 1 %}{{ raise_exception('too many: ' ~ messages | length) }}{% endif %}ok"),
    ("raise_unicode", "{{ raise_exception('ロールが不正です: ' + messages[0].role) }}"),
    ("undefined_attr_error", "before {{ nope.attr }}"),
    ("undefined_call_error", "{{ nope() }}"),
    ("undefined_arith_error", "{{ nope + 1 }}"),
    ("str_plus_int_error", "{{ 'a' + 1 }}"),
    ("concat_then_add_error", "{{ 'a' ~ 1 + 2 }}"),
    ("div_zero_error", "{{ 1 / 0 }}"),
    ("mod_zero_error", "{{ 1 % 0 }}"),
    ("unknown_method_error", "{{ 'ab'.foo() }}"),
    ("compare_types_error", "{{ 1 < 'a' }}"),
    ("len_int_error", "{{ 5 | length }}"),
    ("not_iterable_error", "{% for x in 5 %}{% endfor %}"),
    ("unpack_error", "{% for a, b in [[1, 2, 3]] %}{% endfor %}"),
    ("ns_assign_error", "{% set x = 1 %}{% set x.y = 2 %}"),
    ("step_zero_error", "{{ 'abc'[::0] }}"),
    ("slice_index_error", "{{ [1, 2, 3][nope:] }}"),
    ("slice_undefined_error", "{{ nope[1:] }}"),
    ("tojson_undefined_error", "{{ nope | tojson }}"),
    ("range_too_big_error", "{{ range(1000000) | length }}"),
    ("macro_too_many_args_error", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
    ("in_int_error", "{{ 1 in 5 }}"),
    ("int_in_str_error", "{{ 1 in 'abc' }}"),
    # syntax errors (TemplateSyntaxError at compile time)
    ("syntax_unclosed_for", "{% for m in messages %}{{ m }}"),
    ("syntax_unclosed_var", "{{ messages "),
    ("syntax_bad_expr", "{{ 1 + }}"),
    ("syntax_endif_without_if", "{% endif %}"),
    ("syntax_unclosed_string", "{{ 'abc }}"),
    ("syntax_unclosed_comment", "{# never closed"),
    ("syntax_unbalanced", "{{ (1 + 2 }}"),
    ("syntax_break_outside_loop", "{% break %}"),
    ("syntax_missing_in", "{% for x messages %}{% endfor %}"),
    ("syntax_chained_is", "{{ x is defined is defined }}"),
]

FEATURE_MESSAGES = CONV["system_multi"] + [{"role": "user", "content": "最後の質問 😀"}]


def main():
    os.makedirs(OUT, exist_ok=True)
    smol, smol_src = smollm2_template()
    families = [
        ("llama2", "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json chat_template",
         [("llama2_chat", LLAMA2, "<s>", "</s>", None)]),
        ("llama3", "meta-llama/Meta-Llama-3-8B-Instruct and Llama-3.1-8B-Instruct tokenizer_config.json",
         [("llama3_instruct", LLAMA3, "<|begin_of_text|>", "<|eot_id|>", None),
          ("llama3_1_instruct", LLAMA31, "<|begin_of_text|>", "<|eot_id|>", None)]),
        ("mistral", "mistralai/Mistral-7B-Instruct-v0.1, v0.2 (later revision) and v0.3 tokenizer_config.json",
         [("mistral_v0_1", MISTRAL_V01, "<s>", "</s>", None),
          ("mistral_v0_2", MISTRAL_V02, "<s>", "</s>", None),
          ("mistral_v0_3", MISTRAL_V03, "<s>", "</s>", None)]),
        ("qwen2", "Qwen/Qwen2-7B-Instruct and Qwen/Qwen2.5-7B-Instruct tokenizer_config.json (ChatML)",
         [("qwen2_instruct", QWEN2, None, "<|im_end|>", None),
          ("qwen2_5_instruct", QWEN25, None, "<|im_end|>", None)]),
        ("smollm2", smol_src, [("smollm2_instruct", smol, "<|im_start|>", "<|im_end|>", None)]),
        ("gemma", "google/gemma-7b-it tokenizer_config.json chat_template",
         [("gemma_it", GEMMA, "<bos>", "<eos>", None)]),
        ("japanese", "written here in the style of rinna japanese-gpt-neox instruction-sft / "
         "CyberAgent open-calm instruction templates", [("japanese_instruct", JAPANESE, "<s>", "</s>", None)]),
    ]
    total = errors = 0
    for fname, source, templates in families:
        out = {"source": source, "made_with": f"transformers {transformers.__version__}",
               "templates": []}
        for tname, tmpl, bos, eos, extra in templates:
            cases = model_cases(tmpl, bos, eos, extra=extra)
            if tname == "llama3_1_instruct":
                cases.append(make_case("date_string", tmpl, CONV["system_multi"], True, bos, eos,
                                       {"date_string": "01 Jan 2025"}))
            out["templates"].append({"name": tname, "template": tmpl, "cases": cases})
            total += len(cases)
            errors += sum("error" in c for c in cases)
        with open(os.path.join(OUT, fname + ".json"), "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
    # feature templates
    out = {"source": "small templates written here, one per supported Jinja construct",
           "made_with": f"transformers {transformers.__version__}", "templates": []}
    extra = {"date_string": "26 Jul 2024", "custom": "カスタム"}
    for name, tmpl in FEATURES:
        cases = [make_case("default", tmpl, FEATURE_MESSAGES, False, "<s>", "</s>", extra)]
        if name == "vars":
            cases.append(make_case("no_special_tokens", tmpl, FEATURE_MESSAGES, True, None, None, {}))
        if name == "content_template_text":
            cases.append(make_case("tricky", tmpl, CONV["template_like_content"] + CONV["whitespace"]))
        if name == "none_content":
            cases = [make_case("default", tmpl, [{"role": "user", "content": None},
                                                 {"role": "assistant", "content": "x"}])]
        out["templates"].append({"name": name, "template": tmpl, "cases": cases})
        total += len(cases)
        errors += sum("error" in c for c in cases)
    with open(os.path.join(OUT, "features.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {total} cases ({errors} expected errors)")
    # seed corpus of tests/fuzz/fuzz_chat_template.c: the real templates and a few feature ones
    os.makedirs(CORPUS, exist_ok=True)
    seeds = {name: tmpl for _, _, ts in families for name, tmpl, _, _, _ in ts}
    for name, tmpl in FEATURES:
        if name in ("namespace", "macros", "tojson", "slicing", "filters_list", "string_methods",
                    "trim_lstrip", "loop_filter_else", "set_block", "with_filterblock", "escapes"):
            seeds["feature_" + name] = tmpl
    for name, tmpl in seeds.items():
        with open(os.path.join(CORPUS, name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(tmpl)
    print(f"wrote {CORPUS}: {len(seeds)} seeds")


if __name__ == "__main__":
    sys.exit(main())
