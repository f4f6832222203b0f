import pytest

from seqpipe.pipeline import CustomObjectScope, custom_object_scope, get_custom_objects, register
from seqpipe.pipeline.custom_objects import resolve


class A:
    pass


class B:
    pass


def test_scope_makes_names_resolvable_and_reverts():
    assert "A" not in get_custom_objects()
    with CustomObjectScope({"A": A}, {"B": B}) as scope:
        assert resolve("A") is A and resolve("B") is B
        assert scope.custom_objects == ({"A": A}, {"B": B})
    assert "A" not in get_custom_objects() and "B" not in get_custom_objects()
    with pytest.raises(ValueError, match=r"Unknown object name 'A'.*CustomObjectScope"):
        resolve("A")


def test_changes_by_other_code_inside_the_block_are_reverted_too():
    get_custom_objects()["kept"] = 1
    try:
        with custom_object_scope({"A": A}):
            get_custom_objects()["leaked"] = 2
            get_custom_objects()["kept"] = 3
            del get_custom_objects()["A"]
        assert get_custom_objects() == {"kept": 1}
    finally:
        get_custom_objects().clear()


def test_revert_on_exception():
    with pytest.raises(RuntimeError, match="boom"), CustomObjectScope({"A": A}):
        get_custom_objects()["B"] = B
        raise RuntimeError("boom")
    assert get_custom_objects() == {}


def test_scopes_nest():
    with CustomObjectScope({"A": A}):
        with CustomObjectScope({"A": B, "B": B}):
            assert resolve("A") is B and resolve("B") is B
        assert resolve("A") is A
        assert "B" not in get_custom_objects()
    assert get_custom_objects() == {}


def test_register_survives_scopes_and_explicit_objects_win():
    with CustomObjectScope({}):

        @register("Renamed")
        class Registered:
            pass

    assert resolve("Renamed") is Registered
    assert resolve("Renamed", custom_objects={"Renamed": A}) is A
    with CustomObjectScope({"Renamed": B}):
        assert resolve("Renamed") is B


def test_scope_rejects_non_dicts():
    with pytest.raises(TypeError, match="dicts of name"):
        CustomObjectScope([("A", A)])
