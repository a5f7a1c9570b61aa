"""The NNX constructors' written-out signatures are the argument schema (one source of truth)."""

import inspect
import typing

import pytest

import jaxembed
from jaxembed import _spec

CLASSES = [jaxembed.Embedding, jaxembed.ReversibleEmbedding]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_constructor_signature_is_the_argument_schema(cls):
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    schema = _spec.ARGUMENTS
    assert [p.name for p in parameters[: len(schema)]] == [a.name for a in schema]
    for parameter, argument in zip(parameters, schema):
        assert parameter.default is argument.default or parameter.default == argument.default, argument.name
        assert type(parameter.default) is type(argument.default), argument.name
        assert parameter.annotation == argument.annotation, argument.name
        expected_kind = (
            inspect.Parameter.POSITIONAL_OR_KEYWORD if argument.required else inspect.Parameter.KEYWORD_ONLY
        )
        assert parameter.kind is expected_kind, argument.name
    # explicit: no **kwargs funnel, so a misspelled argument is Python's own TypeError
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mask_zeros'"):
        cls(4, 3, mask_zero=True, mask_zeros=True)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_constructor_types_resolve_and_are_precise(cls):
    hints = typing.get_type_hints(cls.__init__)
    assert hints["lookup"] == typing.Literal["take", "one_hot"]
    assert hints["invalid_ids"] == typing.Literal["nan", "checkify"]
    assert hints["embeddings_initializer"] == _spec.InitializerLike
    assert hints["dtype"] == _spec.DTypeLike
    assert hints["quantization_config"] == _spec.QuantizationConfigLike
    untyped = [name for name, hint in hints.items() if hint is typing.Any]
    assert untyped == []


def test_reversible_arguments_follow_the_schema():
    parameters = inspect.signature(jaxembed.ReversibleEmbedding.__init__).parameters
    for name in _spec._REVERSE_ARGUMENTS:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["tie_weights"].default is True


def test_linen_fields_follow_the_schema():
    fields = jaxembed.linen.Embedding.__dataclass_fields__
    for argument in _spec.ARGUMENTS:
        if argument.name == "name":
            continue  # Linen's own module name
        field = fields[argument.name]
        assert field.type == argument.annotation
        if not argument.required:
            assert field.default == argument.default
