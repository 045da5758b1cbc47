"""Close-name suggestions for misspelled config values and types."""
import difflib
from typing import Dict, Iterable, List, Optional


def close_names(word: str, candidates: Iterable[str], n: int = 3) -> List[str]:
    """Case-insensitive close matches of ``word`` among ``candidates``."""
    lower = {c.lower(): c for c in candidates}
    return [lower[c] for c in difflib.get_close_matches(
        word.lower(), list(lower), n=n, cutoff=0.6)]


def _all_registries(root) -> List:
    """``root`` and all its descendants."""
    from xcit_mm.runtime.mmengine_private import registry_children
    out, todo = [], [root]
    while todo:
        reg = todo.pop()
        out.append(reg)
        todo.extend(registry_children(reg))
    return out


def _root_registry(registry_name: str):
    import mmengine.registry as mmreg
    for value in vars(mmreg).values():
        if (isinstance(value, mmreg.Registry) and value.parent is None
                and value.name == registry_name):
            return value
    return None


def registry_suggestions(name: str, registry_name: str,
                         scope: Optional[str] = None, n: int = 3) -> List[str]:
    """Registered names close to ``name``, spelled as a config must use them.

    The search covers the registry of ``scope`` and its parents (names as
    they are) and every other scope of the same registry tree (names with
    their scope prefix, e.g. ``'xcit_mm.XCiT'``). Lazy ``locations`` are
    imported first, so every library's modules count.

    Args:
        name (str): The misspelled type, with or without a scope prefix.
        registry_name (str): e.g. ``'model'``, ``'dataset'``, ``'hook'``.
        scope (str, optional): The scope the lookup ran in (the config's
            ``default_scope``). Defaults to None (mmengine's root).
        n (int): At most this many suggestions. Defaults to 3.
    """
    import importlib
    for lib in ('xcit_mm', scope):
        if lib:
            try:
                importlib.import_module(f'{lib}.registry')
            except ImportError:
                pass
    from xcit_mm.runtime.mmengine_private import search_child
    root = _root_registry(registry_name)
    if root is None:
        return []
    local = search_child(root, scope) if scope else None
    if local is None:  # (a Registry with no modules yet is falsy)
        local = root
    chain = []
    reg = local
    while reg is not None:
        chain.append(reg)
        reg = reg.parent
    spellings: Dict[str, List[str]] = {}  # lower bare name -> spellings
    for reg in _all_registries(root):
        try:
            reg.import_from_location()
        except Exception:  # a library that fails to import offers nothing
            continue
        for key in reg.module_dict:
            full = key if reg in chain else f'{reg.scope}.{key}'
            spellings.setdefault(key.lower(), []).append(full)
    prefix = name.rsplit('.', 1)[0] + '.' if '.' in name else None
    bare = name.split('.')[-1].lower()
    out: List[str] = []
    for match in difflib.get_close_matches(bare, list(spellings), n=n,
                                           cutoff=0.6):
        # the scope the user wrote first, then names visible without one
        out += sorted(spellings[match],
                      key=lambda s: (not (prefix and s.startswith(prefix)),
                                     '.' in s))
    return list(dict.fromkeys(out))[:n]
