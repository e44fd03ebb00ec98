/**
 * cocosim/inject-every-param: a constructor parameter of a decorated class (tsyringe's
 * @injectable()) must carry @inject(TOKEN) or @injectAll(TOKEN). cocosim never relies on
 * decorator metadata: esbuild emits none and Oxc only some, so a missing
 * token would resolve differently under tsc, vitest and the CLI.
 */
const INJECT = new Set(['inject', 'injectAll', 'injectWithTransform', 'injectAllWithTransform']);

function decoratorName(d) {
  const e = d.expression;
  if (e.type === 'CallExpression') return e.callee.type === 'Identifier' ? e.callee.name : undefined;
  return e.type === 'Identifier' ? e.name : undefined;
}

export default {
  meta: {
    type: 'problem',
    docs: { description: 'every constructor parameter of a decorated class has an explicit @inject(TOKEN)' },
    schema: [],
    messages: { missing: "constructor parameter '{{name}}' of decorated class '{{cls}}' has no @inject(TOKEN)" },
  },
  create(context) {
    function check(cls) {
      if (!cls.decorators || cls.decorators.length === 0) return;
      const ctor = cls.body.body.find((m) => m.type === 'MethodDefinition' && m.kind === 'constructor');
      if (!ctor) return;
      for (const param of ctor.value.params) {
        const decorators = param.decorators ?? [];
        if (decorators.some((d) => INJECT.has(decoratorName(d)))) continue;
        const target = param.type === 'TSParameterProperty' ? param.parameter : param;
        const name = target.type === 'Identifier' ? target.name : target.left?.name ?? '?';
        context.report({ node: param, messageId: 'missing', data: { name, cls: cls.id?.name ?? '(anonymous)' } });
      }
    }
    return { ClassDeclaration: check, ClassExpression: check };
  },
};
