"""Traditional → simplified for characters common in personal names.

A small table instead of a dependency: names draw on a few thousand characters, the homophone level
(pinyin) already makes any traditional/simplified pair agree, and this table only lifts the
commonest pairs to the stronger ``exact`` level. Each pair is checked in the tests to read the same
in pinyin. Extend it by appending pairs (traditional first).
"""

from __future__ import annotations

_TABLE = """
張张 陳陈 劉刘 黃黄 趙赵 吳吴 楊杨 鄭郑 謝谢 許许 馮冯 鄧邓 韓韩 蕭萧 葉叶 呂吕 蘇苏 盧卢 蔣蒋 賈贾
陸陆 錢钱 孫孙 鍾钟 龍龙 萬万 嚴严 華华 國国 偉伟 麗丽 強强 軍军 傑杰 濤涛 鵬鹏 輝辉 紅红 蘭兰 鳳凤
雲云 東东 書书 義义 順顺 寶宝 貴贵 榮荣 興兴 鳴鸣 飛飞 瑩莹 瓊琼 靜静 龔龚 羅罗 鄒邹 閆闫 顧顾 賀贺
湯汤 鄔邬 譚谭 龐庞 範范 鄺邝 聶聂 喬乔 雙双 闕阙 衛卫 紀纪 齊齐 歐欧 陽阳 馬马 車车 賴赖 溫温 簡简
藍蓝 竇窦 單单 費费 鮑鲍 魯鲁 韋韦 婁娄 愛爱 蓮莲 瑤瑶 潔洁 儀仪 婭娅 穎颖 靈灵 韻韵 嬌娇 纖纤 紈纨
綠绿 煙烟 亞亚 寧宁 歡欢 曉晓 駿骏 鴻鸿 劍剑 寬宽 樺桦 驊骅 燁烨 爍烁 彥彦 澤泽 勝胜 慶庆 發发 財财
廣广 權权 學学 賢贤 銘铭 錦锦 鋒锋 鎮镇 鐵铁 長长 達达 遠远 運运 進进 連连 邁迈 聰聪 聖圣 經经 維维
綺绮 緒绪 績绩 繼继 紹绍 續续 綱纲 純纯 紋纹 紗纱 結结 統统 絲丝 練练 顯显 顏颜 風风 颯飒 驥骥 鶴鹤
鸞鸾 齡龄 億亿 儉俭 傳传 倫伦 僑侨 優优 兒儿 凱凯 勳勋 勵励 勁劲 協协 嘯啸 園园 圓圆 團团 堅坚 壯壮
壽寿 夢梦 奮奋 實实 寵宠 將将 尋寻 對对 巖岩 帥帅 師师 彈弹 徵征 憶忆 懷怀 戰战 擁拥 數数 斕斓 暉晖
暢畅 曄晔 會会 樂乐 標标 樹树 橋桥 機机 欽钦 歲岁 歸归 氣气 漢汉 潤润 澗涧 灣湾 滿满 漁渔 濱滨 瀟潇
燦灿 燈灯 營营 獻献 環环 璣玑 瓏珑 畢毕 異异 盡尽 眾众 碩硕 禮礼 禎祯 穩稳 競竞 筆笔 築筑 簫箫 約约
絹绢 綿绵 線线 聯联 聲声 職职 肅肃 舉举 艷艳 藝艺 蘊蕴 蘋苹 蟬蝉 裝装 覺觉 親亲 觀观 訓训 詩诗 誠诚
誼谊 諾诺 謙谦 譽誉 讓让 豐丰 貞贞 賓宾 贊赞 軒轩 輕轻 農农 邊边 鄉乡 鈺钰 銀银 鋼钢 錄录 鏡镜 鐘钟
門门 開开 閃闪 闊阔 陣阵 隊队 階阶 隨随 雞鸡 離离 難难 韜韬 頌颂 領领 頤颐 頻频 飄飘 餘余 館馆 駒驹
騰腾 驍骁 鬆松 鮮鲜 鷹鹰 麥麦 曆历 歷历 髮发 後后 裡里 麵面 鬱郁 鈞钧 鋭锐 銳锐 瑋玮 璽玺
"""
_PAIRS = _TABLE.split()

TRAD_TO_SIMP: dict[str, str] = {pair[0]: pair[1] for pair in _PAIRS}
TRANSLATION = str.maketrans(TRAD_TO_SIMP)
